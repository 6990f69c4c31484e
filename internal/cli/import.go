package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/surge"
)

type importOptions struct {
	account        string
	project        string
	apiKeyFile     string
	apiURL         string
	insecureURL    bool
	deletionPolicy string
	observeOnly    bool
}

func newImportCommand(o *options) *cobra.Command {
	var in importOptions
	cmd := &cobra.Command{
		Use:   "import --account acct_... [--project [ClusterSurgeProject/]NAME]",
		Short: "Write SurgeEndUser YAML adopting every user of an existing Surge account",
		Long: `import lists the users of a Surge account and writes, to standard output, one
SurgeEndUser for each, adopting it through spec.userID, with its names, photo
and metadata: the resources for onboarding an account into Git. Applied, they
take the users over without creating any.

The API key is the one of the project named by --project (a SurgeProject of
the namespace, or ClusterSurgeProject/NAME), read from its Secret as the
operator reads it, and the resources name that project; without --project,
the key comes from --api-key-file or SURGE_API_KEY, and the resources use the
operator's own key. The key is never printed.

Users that a SurgeEndUser of the cluster already manages are left out, and so
are users whose fields the resource would refuse; both are listed on standard
error. Names are the users' names as DNS labels ("Zoë O'Brien" becomes
zoe-o-brien), with the tail of the user id added where two would be the same
or one is taken in the namespace.

The resources keep the users in Surge when deleted (deletionPolicy Orphan)
unless --deletion-policy=Delete: these users lived before the operator, and
removing a file from Git by mistake should not delete a person's account.

With --observe-only the resources have managementPolicies ["Observe"]: the
operator reads the users and reports drift (Synced=False) but never writes to
Surge. Changing them to ["*"] later applies the spec.`,
		Example: `  kubectl surge import --account acct_01j9a43avnfqzbjfch6pygv1td --project team-a -n billing > users.yaml
  SURGE_API_KEY=... kubectl surge import --account acct_01j9a43avnfqzbjfch6pygv1td > users.yaml
  kubectl surge import --account acct_01j9a43avnfqzbjfch6pygv1td --api-key-file key.txt | kubectl apply -f -
  kubectl surge import --account acct_01j9a43avnfqzbjfch6pygv1td --project team-a --observe-only > users.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.runImport(cmd.Context(), in)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&in.account, "account", "", "The Surge account (acct_...) whose users to import.")
	flags.StringVar(&in.project, "project", "", "The project whose API key lists the account and manages the resources: NAME for a SurgeProject of the namespace, ClusterSurgeProject/NAME for a cluster one.")
	flags.StringVar(&in.apiKeyFile, "api-key-file", "", "Without --project: a file holding the API key (- reads standard input); else SURGE_API_KEY.")
	flags.StringVar(&in.apiURL, "surge-api-url", "", "Base URL of the Surge API, when the project names none (env SURGE_API_URL; default "+surge.DefaultAPIURL+").")
	flags.BoolVar(&in.insecureURL, "allow-insecure-surge-api-url", false, "Accept a plain http:// API URL on a host other than localhost, which sends the key in clear.")
	flags.StringVar(&in.deletionPolicy, "deletion-policy", string(surgev1alpha1.DeletionPolicyOrphan), "The resources' deletionPolicy: Orphan keeps the user in Surge when the resource is deleted, Delete deletes it.")
	flags.BoolVar(&in.observeOnly, "observe-only", false, `Write the resources with managementPolicies ["Observe"]: the operator only reads the users, and reports drift.`)
	_ = cmd.MarkFlagRequired("account")
	return cmd
}

func (o *options) runImport(ctx context.Context, in importOptions) error {
	if !strings.HasPrefix(in.account, "acct_") {
		return fmt.Errorf("--account %q is not a Surge account id (acct_...)", in.account)
	}
	policy := surgev1alpha1.DeletionPolicy(in.deletionPolicy)
	if policy != surgev1alpha1.DeletionPolicyOrphan && policy != surgev1alpha1.DeletionPolicyDelete {
		return fmt.Errorf("--deletion-policy %q: Orphan or Delete", in.deletionPolicy)
	}
	if in.project != "" && in.apiKeyFile != "" {
		return errors.New("--project and --api-key-file exclude each other: the key is the project's")
	}
	namespace, err := o.namespace()
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	apiURL := cmp.Or(in.apiURL, o.getenv("SURGE_API_URL"), surge.DefaultAPIURL)
	var clientOptions []surge.Option
	if in.insecureURL {
		clientOptions = append(clientOptions, surge.WithInsecureHTTP())
	}

	var api *surge.Client
	var projectRef *surgev1alpha1.ProjectReference
	if in.project != "" {
		projectRef, err = parseProjectRef(in.project)
		if err != nil {
			return err
		}
		api, err = o.projectClient(ctx, c, namespace, in.account, projectRef, apiURL, clientOptions)
	} else {
		api, err = o.ownKeyClient(apiURL, in.apiKeyFile, clientOptions)
	}
	if err != nil {
		return err
	}

	held, taken, err := o.managedUsers(ctx, c, namespace)
	if err != nil {
		return err
	}
	var users []surge.User
	skipped := 0
	err = api.EachUser(ctx, in.account, func(u surge.User) bool {
		if holder, ok := held[u.ID]; ok {
			fmt.Fprintf(o.streams.ErrOut, "skipped %s (%s): SurgeEndUser %s manages it\n", u.ID, displayName(u), holder)
			skipped++
			return true
		}
		if problem := importable(u); problem != "" {
			fmt.Fprintf(o.streams.ErrOut, "skipped %s (%s): %s\n", u.ID, displayName(u), problem)
			skipped++
			return true
		}
		users = append(users, u)
		return true
	})
	if surge.IsAccountNotFound(err) {
		return fmt.Errorf("surge does not know account %s, or the API key cannot reach it: %w", in.account, err)
	}
	if err != nil {
		return fmt.Errorf("listing the users of %s: %w", in.account, err)
	}

	var policies []surgev1alpha1.ManagementPolicy
	if in.observeOnly {
		policies = []surgev1alpha1.ManagementPolicy{surgev1alpha1.ManagementObserve}
	}
	documents := endUserDocuments(users, taken, namespace, in.account, projectRef, policy, policies)
	var out bytes.Buffer
	fmt.Fprintf(&out, "# SurgeEndUsers adopting the users of Surge account %s, written by kubectl surge import.\n", in.account)
	for _, document := range documents {
		raw, err := yaml.Marshal(document)
		if err != nil {
			return err
		}
		out.WriteString("---\n")
		out.Write(raw)
	}
	if _, err := o.streams.Out.Write(out.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(o.streams.ErrOut, "wrote %d SurgeEndUsers for account %s into namespace %s; skipped %d\n", len(documents), in.account, namespace, skipped)
	return nil
}

// endUserDocument is a SurgeEndUser as import writes it: no status, no
// empty metadata fields.
type endUserDocument struct {
	APIVersion string                         `json:"apiVersion"`
	Kind       string                         `json:"kind"`
	Metadata   documentMetadata               `json:"metadata"`
	Spec       surgev1alpha1.SurgeEndUserSpec `json:"spec"`
}

type documentMetadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

// endUserDocuments names the users and writes a SurgeEndUser for each,
// sorted by name so that a second import of the same account gives the
// same file.
func endUserDocuments(users []surge.User, taken map[string]bool, namespace, account string, project *surgev1alpha1.ProjectReference, policy surgev1alpha1.DeletionPolicy, policies []surgev1alpha1.ManagementPolicy) []endUserDocument {
	names := uniqueNames(users, taken)
	documents := make([]endUserDocument, len(users))
	for i, u := range users {
		documents[i] = endUserDocument{
			APIVersion: surgev1alpha1.GroupVersion.String(),
			Kind:       surgev1alpha1.KindSurgeEndUser,
			Metadata:   documentMetadata{Name: names[i], Namespace: namespace},
			Spec: surgev1alpha1.SurgeEndUserSpec{
				ProjectRef:         project,
				AccountID:          account,
				UserID:             u.ID,
				FirstName:          u.FirstName,
				LastName:           u.LastName,
				PhotoURL:           u.PhotoURL,
				Metadata:           userMetadata(u),
				DeletionPolicy:     policy,
				ManagementPolicies: policies,
			},
		}
	}
	slices.SortFunc(documents, func(a, b endUserDocument) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return documents
}

// userMetadata is the user's metadata without the operator's reserved
// keys, which the operator writes itself once it manages the user.
func userMetadata(u surge.User) map[string]string {
	metadata := map[string]string{}
	for key, value := range u.Metadata {
		if !strings.HasPrefix(key, surgev1alpha1.ReservedMetadataPrefix) {
			metadata[key] = value
		}
	}
	if len(metadata) == 0 {
		return nil
	}
	return metadata
}

// importable says why the API server would refuse a SurgeEndUser with the
// user's fields, by the limits of the CRD; empty when it would not.
func importable(u surge.User) string {
	metadata := userMetadata(u)
	switch {
	case !strings.HasPrefix(u.ID, "usr_") || len(u.ID) > 64:
		return "its id is not a Surge user id of at most 64 characters"
	case u.FirstName == "" || utf8.RuneCountInString(u.FirstName) > 255:
		return "its first name is empty or longer than 255 characters"
	case utf8.RuneCountInString(u.LastName) > 255:
		return "its last name is longer than 255 characters"
	case u.PhotoURL != "" && !isHTTPURL(u.PhotoURL):
		return "its photo URL is not an absolute http or https URL of at most 2048 characters"
	case len(metadata) > 64:
		return fmt.Sprintf("it has %d metadata entries, more than the 64 a SurgeEndUser holds", len(metadata))
	}
	for key, value := range metadata {
		if utf8.RuneCountInString(key) > 64 || utf8.RuneCountInString(value) > 512 {
			return fmt.Sprintf("its metadata key %q, or its value, is longer than a SurgeEndUser allows (64 and 512 characters)", key)
		}
	}
	return ""
}

func isHTTPURL(raw string) bool {
	if utf8.RuneCountInString(raw) > 2048 || !strings.HasPrefix(raw, "https://") && !strings.HasPrefix(raw, "http://") {
		return false
	}
	u, err := url.Parse(raw)
	return err == nil && u.Host != ""
}

func displayName(u surge.User) string {
	return strings.TrimSpace(u.FirstName + " " + u.LastName)
}

// parseProjectRef reads NAME, SurgeProject/NAME or ClusterSurgeProject/NAME.
func parseProjectRef(value string) (*surgev1alpha1.ProjectReference, error) {
	kind, name, qualified := strings.Cut(value, "/")
	if !qualified {
		kind, name = surgev1alpha1.KindSurgeProject, value
	}
	switch {
	case strings.EqualFold(kind, surgev1alpha1.KindSurgeProject):
		kind = surgev1alpha1.KindSurgeProject
	case strings.EqualFold(kind, surgev1alpha1.KindClusterSurgeProject):
		kind = surgev1alpha1.KindClusterSurgeProject
	default:
		return nil, fmt.Errorf("--project %q: NAME, SurgeProject/NAME or ClusterSurgeProject/NAME", value)
	}
	if name == "" {
		return nil, fmt.Errorf("--project %q names no project", value)
	}
	return &surgev1alpha1.ProjectReference{Kind: kind, Name: name}, nil
}

// projectClient checks that the project admits SurgeEndUsers of the account
// in the namespace, as the operator would, and returns a Surge client with
// its key, read from its Secret by the operator's own code.
func (o *options) projectClient(ctx context.Context, c client.Client, namespace, account string, ref *surgev1alpha1.ProjectReference, defaultURL string, clientOptions []surge.Option) (*surge.Client, error) {
	probe := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "import"},
		Spec:       surgev1alpha1.SurgeEndUserSpec{ProjectRef: ref, AccountID: account},
	}
	projectRef, _ := credentials.RefOf(probe)
	// The project's own URL is whatever it names: the operator's allow-list
	// of URLs for SurgeProjects is a flag of the operator, unknown here.
	var allowed []string
	if ref.Kind == surgev1alpha1.KindSurgeProject {
		project := &surgev1alpha1.SurgeProject{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, project); err == nil && project.Spec.APIURL != "" {
			allowed = append(allowed, project.Spec.APIURL)
		}
	}
	manager, err := keysOf(c, "", defaultURL, allowed, clientOptions)
	if err != nil {
		return nil, err
	}
	err = manager.Admits(ctx, probe)
	var refusal *credentials.Refusal
	switch {
	case errors.As(err, &refusal):
		return nil, fmt.Errorf("SurgeEndUsers of %s in namespace %s would stall with %s: %s", account, namespace, refusal.Reason, refusal.Message)
	case apierrors.IsForbidden(err):
		fmt.Fprintf(o.streams.ErrOut, "warning: cannot check whether %s admits namespace %s: %v\n", projectRef, namespace, err)
	case err != nil:
		return nil, explain(err)
	}
	api, err := manager.ProjectClient(ctx, projectRef, true)
	if errors.As(err, &refusal) {
		return nil, fmt.Errorf("%s: %s", refusal.Reason, refusal.Message)
	}
	return api, err
}

// keysOf hands out keys as the operator does: its own key (ownKey, if
// any) and the projects' keys, read from their Secrets through c.
func keysOf(c client.Client, ownKey, defaultURL string, allowedURLs []string, clientOptions []surge.Option) (*credentials.Manager, error) {
	return credentials.NewManager(credentials.Options{
		Cache:         c,
		Secrets:       c,
		DefaultAPIKey: ownKey,
		DefaultURL:    defaultURL,
		AllowedURLs:   allowedURLs,
		NewClient: func(_, apiURL, apiKey string) (*surge.Client, error) {
			return surge.New(apiURL, apiKey, clientOptions...)
		},
	})
}

// ownKeyClient returns a Surge client with the key of --api-key-file or
// SURGE_API_KEY.
func (o *options) ownKeyClient(apiURL, keyFile string, clientOptions []surge.Option) (*surge.Client, error) {
	if keyFile == "" && o.getenv("SURGE_API_KEY") == "" {
		return nil, errors.New("no API key: name the project whose key to use (--project), or give a key in --api-key-file or SURGE_API_KEY")
	}
	key, err := o.readOwnKey(keyFile)
	if err != nil {
		return nil, err
	}
	return surge.New(apiURL, key, clientOptions...)
}

// readOwnKey reads the key of keyFile (- for standard input), else of
// SURGE_API_KEY.
func (o *options) readOwnKey(keyFile string) (string, error) {
	var key string
	switch keyFile {
	case "":
		key = o.getenv("SURGE_API_KEY")
	case "-":
		raw, err := io.ReadAll(io.LimitReader(o.streams.In, 64<<10))
		if err != nil {
			return "", fmt.Errorf("reading the API key from standard input: %w", err)
		}
		key = strings.TrimSpace(string(raw))
	default:
		raw, err := os.ReadFile(keyFile)
		if err != nil {
			return "", fmt.Errorf("reading the API key: %w", err)
		}
		key = strings.TrimSpace(string(raw))
	}
	if key == "" {
		return "", errors.New("the API key is empty")
	}
	return key, nil
}

// managedUsers returns the users that SurgeEndUsers of the cluster manage
// or ask to adopt, with the resource that does, and the names already taken
// in the namespace. A user who may not list every namespace sees only
// those of the namespace, and is warned.
func (o *options) managedUsers(ctx context.Context, c client.Client, namespace string) (map[string]string, map[string]bool, error) {
	list := &surgev1alpha1.SurgeEndUserList{}
	err := c.List(ctx, list)
	if apierrors.IsForbidden(err) {
		fmt.Fprintf(o.streams.ErrOut, "warning: cannot list SurgeEndUsers in every namespace, only in %s: users managed from other namespaces are not recognized\n", namespace)
		err = c.List(ctx, list, client.InNamespace(namespace))
	}
	if err != nil {
		return nil, nil, explain(err)
	}
	held := map[string]string{}
	taken := map[string]bool{}
	for i := range list.Items {
		obj := &list.Items[i]
		for _, id := range []string{obj.Status.UserID, obj.Spec.UserID} {
			if id != "" {
				held[id] = keyString(obj)
			}
		}
		if obj.Namespace == namespace {
			taken[obj.Name] = true
		}
	}
	return held, taken, nil
}
