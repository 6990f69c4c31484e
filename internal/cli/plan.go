package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/claims"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/remote"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// The actions a plan names, one per resource.
const (
	planCreate    = "create"
	planAdopt     = "adopt"
	planUpdate    = "update"
	planUnchanged = "unchanged"
	planDelete    = "delete"
	planRefused   = "refused"
	// planUnknown: the plan could not tell, say because the key could not
	// be read; a gate treats it as a refusal.
	planUnknown = "unknown"
)

// exitPlanAttention is the exit code of a plan that deletes or refuses
// something, or cannot tell: the code a CI step gates a merge on.
const exitPlanAttention = 2

type planOptions struct {
	files       []string
	apiKeyFile  string
	apiURL      string
	insecureURL bool
	output      string
}

// planEntry is what applying the manifests would do to one SurgeEndUser.
type planEntry struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	// UserID is the end user the action is about: the one adopted,
	// updated, kept or deleted.
	UserID string `json:"userID,omitempty"`
	// Fields are the fields an update writes, or in which an observed
	// user differs from the spec.
	Fields []string `json:"fields,omitempty"`
	// Reason is the condition reason a refused resource would show.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail"`
}

type planDocument struct {
	Resources []planEntry `json:"resources"`
}

func newPlanCommand(o *options) *cobra.Command {
	var in planOptions
	cmd := &cobra.Command{
		Use:   "plan -f DIR|FILE [-f ...]",
		Short: "Say what applying SurgeEndUser manifests would do, without writing anything",
		Long: `plan reads SurgeEndUser manifests that are not applied yet and says, for
each, what applying them would do with the live cluster and Surge account:
create a user, adopt one (and which), update one (which fields), leave it
unchanged, or be refused (why, as admission or the project would refuse it).
SurgeEndUsers of the manifests' namespaces that the manifests no longer hold
would be deleted (as a GitOps prune does), and plan says what that does to
their users.

It makes no write: admission is asked with a server-side dry run, the
project's rules and the operator's claim rules are the operator's own code,
and Surge is only read. The exit code is 2 when something would be deleted
or refused, or could not be told, so that a CI step can gate a merge on it.

Resources without spec.projectRef use the operator's own key, from
--api-key-file or SURGE_API_KEY; the others read their project's key from
its Secret, as the operator does.`,
		Example: `  kubectl surge plan -f users/ -n billing
  kubectl surge plan -f users.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validOutput(in.output); err != nil {
				return withUsage(cmd, err)
			}
			if len(in.files) == 0 {
				return withUsage(cmd, errors.New("-f names no manifests"))
			}
			return o.runPlan(cmd.Context(), in)
		},
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&in.files, "filename", "f", nil, "A manifest file, or a directory of them (read with its subdirectories); repeatable.")
	flags.StringVar(&in.apiKeyFile, "api-key-file", "", "A file holding the operator's own API key (- reads standard input), for resources without spec.projectRef; else SURGE_API_KEY.")
	flags.StringVar(&in.apiURL, "surge-api-url", "", "Base URL of the Surge API, when the project names none (env SURGE_API_URL; default "+surge.DefaultAPIURL+").")
	flags.BoolVar(&in.insecureURL, "allow-insecure-surge-api-url", false, "Accept a plain http:// API URL on a host other than localhost, which sends the key in clear.")
	outputFlag(cmd, &in.output)
	return cmd
}

func (o *options) runPlan(ctx context.Context, in planOptions) error {
	namespace, err := o.namespace()
	if err != nil {
		return err
	}
	desired, err := readManifests(in.files, namespace)
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	p, err := o.newPlanner(ctx, c, in, desired)
	if err != nil {
		return err
	}
	entries, err := p.plan(ctx, desired)
	if err != nil {
		return explain(err)
	}
	if in.output != "" {
		err = printDocument(o.streams.Out, in.output, planDocument{Resources: entries})
	} else {
		err = printPlan(o.streams.Out, entries)
	}
	if err != nil {
		return err
	}
	if needsAttention(entries) {
		return &exitError{code: exitPlanAttention}
	}
	return nil
}

// needsAttention says whether a plan deletes or refuses something, or
// cannot tell.
func needsAttention(entries []planEntry) bool {
	return slices.ContainsFunc(entries, func(e planEntry) bool {
		return e.Action == planDelete || e.Action == planRefused || e.Action == planUnknown
	})
}

func printPlan(w io.Writer, entries []planEntry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tSURGEENDUSER\tDETAIL")
	counts := map[string]int{}
	for _, e := range entries {
		counts[e.Action]++
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\n", e.Action, e.Namespace, e.Name, e.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var summary []string
	for _, action := range []string{planCreate, planAdopt, planUpdate, planUnchanged, planDelete, planRefused, planUnknown} {
		if counts[action] > 0 {
			summary = append(summary, fmt.Sprintf("%d %s", counts[action], action))
		}
	}
	_, err := fmt.Fprintf(w, "\nplan: %s\n", cmp.Or(strings.Join(summary, ", "), "nothing to do"))
	return err
}

// readManifests reads the SurgeEndUsers of files and directories; other
// kinds are skipped. A resource without a namespace is in namespace.
func readManifests(paths []string, namespace string) ([]*surgev1alpha1.SurgeEndUser, error) {
	var files []string
	for _, path := range paths {
		err := filepath.WalkDir(path, func(file string, entry fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch filepath.Ext(file) {
			case ".yaml", ".yml", ".json":
				if !entry.IsDir() {
					files = append(files, file)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var objs []*surgev1alpha1.SurgeEndUser
	seen := map[types.NamespacedName]string{}
	for _, file := range files {
		read, err := readManifest(file, namespace)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		for _, obj := range read {
			key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
			if other, twice := seen[key]; twice {
				return nil, fmt.Errorf("SurgeEndUser %s is in %s and in %s", key, other, file)
			}
			seen[key] = file
			objs = append(objs, obj)
		}
	}
	return objs, nil
}

func readManifest(file, namespace string) ([]*surgev1alpha1.SurgeEndUser, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return ReadEndUsers(f, namespace)
}

// ReadEndUsers reads the SurgeEndUsers of a YAML or JSON stream, such as
// import writes, skipping other kinds; those without a namespace get
// namespace.
func ReadEndUsers(r io.Reader, namespace string) ([]*surgev1alpha1.SurgeEndUser, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []*surgev1alpha1.SurgeEndUser
	for {
		doc := &unstructured.Unstructured{}
		err := decoder.Decode(&doc.Object)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc.GetKind() != surgev1alpha1.KindSurgeEndUser || doc.GroupVersionKind().Group != surgev1alpha1.GroupVersion.Group {
			continue
		}
		obj := &surgev1alpha1.SurgeEndUser{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(doc.Object, obj); err != nil {
			return nil, fmt.Errorf("SurgeEndUser %s: %w", doc.GetName(), err)
		}
		if obj.Namespace == "" {
			obj.Namespace = namespace
		}
		objs = append(objs, obj)
	}
}

// planner reads what a plan needs: the live resources, the projects' keys
// and the accounts.
type planner struct {
	c         client.Client
	keys      *credentials.Manager
	ownKey    bool
	all       []*surgev1alpha1.SurgeEndUser
	listings  map[accountListing][]remote.User
	listingOf map[accountListing]error
}

type accountListing struct {
	scope, account string
}

func (o *options) newPlanner(ctx context.Context, c client.Client, in planOptions, desired []*surgev1alpha1.SurgeEndUser) (*planner, error) {
	apiURL := cmp.Or(in.apiURL, o.getenv("SURGE_API_URL"), surge.DefaultAPIURL)
	var clientOptions []surge.Option
	if in.insecureURL {
		clientOptions = append(clientOptions, surge.WithInsecureHTTP())
	}
	ownKey, err := o.optionalOwnKey(in.apiKeyFile)
	if err != nil {
		return nil, err
	}
	// The operator's allow-list of URLs for SurgeProjects is a flag of the
	// operator, unknown here: a project's own URL is taken as allowed.
	var allowed []string
	for _, namespace := range namespacesOf(desired) {
		projects := &surgev1alpha1.SurgeProjectList{}
		if err := c.List(ctx, projects, client.InNamespace(namespace)); err != nil {
			return nil, explain(err)
		}
		for _, project := range projects.Items {
			if project.Spec.APIURL != "" {
				allowed = append(allowed, project.Spec.APIURL)
			}
		}
	}
	keys, err := keysOf(c, ownKey, apiURL, allowed, clientOptions)
	if err != nil {
		return nil, err
	}
	all, err := o.liveEndUsers(ctx, c, namespacesOf(desired))
	if err != nil {
		return nil, err
	}
	return &planner{
		c: c, keys: keys, ownKey: ownKey != "", all: all,
		listings: map[accountListing][]remote.User{}, listingOf: map[accountListing]error{},
	}, nil
}

// optionalOwnKey is the key of keyFile or SURGE_API_KEY, empty when neither
// gives one.
func (o *options) optionalOwnKey(keyFile string) (string, error) {
	if keyFile == "" && o.getenv("SURGE_API_KEY") == "" {
		return "", nil
	}
	return o.readOwnKey(keyFile)
}

// liveEndUsers lists the SurgeEndUsers of the cluster, which claims are
// decided among; someone who may list only some namespaces gets theirs.
func (o *options) liveEndUsers(ctx context.Context, c client.Client, namespaces []string) ([]*surgev1alpha1.SurgeEndUser, error) {
	list := &surgev1alpha1.SurgeEndUserList{}
	err := c.List(ctx, list)
	if apierrors.IsForbidden(err) {
		fmt.Fprintln(o.streams.ErrOut, "warning: cannot list SurgeEndUsers in every namespace: only those of the manifests' namespaces are weighed for claims")
		list.Items = nil
		for _, namespace := range namespaces {
			part := &surgev1alpha1.SurgeEndUserList{}
			if err := c.List(ctx, part, client.InNamespace(namespace)); err != nil {
				return nil, explain(err)
			}
			list.Items = append(list.Items, part.Items...)
		}
	} else if err != nil {
		return nil, explain(err)
	}
	all := make([]*surgev1alpha1.SurgeEndUser, len(list.Items))
	for i := range list.Items {
		all[i] = &list.Items[i]
	}
	return all, nil
}

func namespacesOf(objs []*surgev1alpha1.SurgeEndUser) []string {
	var namespaces []string
	for _, obj := range objs {
		namespaces = append(namespaces, obj.Namespace)
	}
	slices.Sort(namespaces)
	return slices.Compact(namespaces)
}

// plan says what applying desired does: an entry per desired resource,
// then one per live resource of their namespaces that desired no longer
// holds.
func (p *planner) plan(ctx context.Context, desired []*surgev1alpha1.SurgeEndUser) ([]planEntry, error) {
	var entries []planEntry
	kept := map[types.NamespacedName]bool{}
	for _, obj := range desired {
		kept[keyOfEndUser(obj)] = true
		entry, err := p.planOne(ctx, obj)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry)
	}
	namespaces := namespacesOf(desired)
	for _, live := range p.all {
		if kept[keyOfEndUser(live)] || !slices.Contains(namespaces, live.Namespace) || !live.DeletionTimestamp.IsZero() {
			continue
		}
		entries = append(entries, deletionOf(live))
	}
	slices.SortStableFunc(entries, func(a, b planEntry) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return entries, nil
}

// deletionOf is what deleting live does to its user.
func deletionOf(live *surgev1alpha1.SurgeEndUser) planEntry {
	entry := planEntry{Namespace: live.Namespace, Name: live.Name, Action: planDelete, UserID: live.Status.UserID}
	switch {
	case live.Status.UserID == "":
		entry.Detail = "manages no end user: nothing is deleted in Surge"
	case live.Spec.LeavesUserInSurge():
		entry.Detail = fmt.Sprintf("leaves end user %s in Surge (deletionPolicy %s, managementPolicies %q)", live.Status.UserID, live.Spec.DeletionPolicy, live.Spec.ManagementPolicies)
	default:
		entry.Detail = fmt.Sprintf("deletes end user %s in Surge, for good", live.Status.UserID)
	}
	return entry
}

func (p *planner) planOne(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (planEntry, error) {
	entry := planEntry{Namespace: obj.Namespace, Name: obj.Name}
	live := p.live(keyOfEndUser(obj))
	admitted, err := p.admit(ctx, obj, live)
	if err != nil {
		entry.Action, entry.Detail = planRefused, "admission: "+admissionMessage(err)
		return entry, nil
	}
	key, err := p.keys.KeyFor(ctx, admitted)
	if refusal, refused := errors.AsType[*credentials.Refusal](err); refused {
		if refusal.Reason == credentials.ReasonNoProject && !p.ownKey {
			entry.Action, entry.Detail = planUnknown, "spec.projectRef is not set: give the operator's own key in --api-key-file or SURGE_API_KEY to plan it"
			return entry, nil
		}
		entry.Action, entry.Reason, entry.Detail = planRefused, refusal.Reason, refusal.Message
		return entry, nil
	}
	if err != nil {
		entry.Action, entry.Detail = planUnknown, err.Error()
		return entry, nil
	}
	decided, err := p.decide(ctx, admitted, live, key)
	if err != nil {
		entry.Action, entry.Detail = planUnknown, err.Error()
		return entry, nil
	}
	decided.Namespace, decided.Name = obj.Namespace, obj.Name
	return decided, nil
}

func (p *planner) live(key types.NamespacedName) *surgev1alpha1.SurgeEndUser {
	for _, obj := range p.all {
		if keyOfEndUser(obj) == key {
			return obj
		}
	}
	return nil
}

// admit asks the API server, by a dry run, whether it takes obj as a new
// resource or as a change of live, and returns obj as it would be stored:
// with its defaults, and the uid and status of live.
func (p *planner) admit(ctx context.Context, obj, live *surgev1alpha1.SurgeEndUser) (*surgev1alpha1.SurgeEndUser, error) {
	if live == nil {
		candidate := obj.DeepCopy()
		candidate.ResourceVersion = ""
		err := p.c.Create(ctx, candidate, client.DryRunAll)
		return candidate, err
	}
	candidate := live.DeepCopy()
	candidate.Spec = obj.Spec
	err := p.c.Update(ctx, candidate, client.DryRunAll)
	candidate.Status = live.Status
	return candidate, err
}

func admissionMessage(err error) string {
	if status, ok := errors.AsType[*apierrors.StatusError](err); ok {
		return status.ErrStatus.Message
	}
	return err.Error()
}

// decide says what the operator does with obj, admitted: the same checks,
// in the same order, as its reconcile of the user, with reads only.
func (p *planner) decide(ctx context.Context, obj, live *surgev1alpha1.SurgeEndUser, key credentials.Key) (planEntry, error) {
	desired := remote.FieldsOf(obj)
	if live != nil && live.Status.UserID != "" {
		user, found, err := p.user(ctx, key, live.Status.UserID)
		if err != nil {
			return planEntry{}, err
		}
		if !found {
			return p.creation(obj, fmt.Sprintf("end user %s was deleted in Surge outside the operator", live.Status.UserID)), nil
		}
		return changeOf(obj, user, desired), nil
	}
	users, err := p.listing(ctx, key, obj.Spec.AccountID)
	if err != nil {
		return planEntry{}, err
	}
	if obj.Spec.UserID != "" {
		return p.adoption(ctx, obj, key, users)
	}
	for _, user := range users {
		if identity, tagged := remote.IdentityOf(user); !tagged || identity != keyOfEndUser(obj) {
			continue
		}
		_, claimed, err := p.holder(ctx, obj, user)
		if err != nil {
			return planEntry{}, err
		}
		if claimed {
			continue
		}
		entry := changeOf(obj, user, desired)
		entry.Action = planAdopt
		entry.Detail = fmt.Sprintf("end user %s, made for an earlier SurgeEndUser of the same name%s", user.ID, changeDetail(obj, entry.Fields))
		return entry, nil
	}
	return p.creation(obj, "no end user of account "+obj.Spec.AccountID+" carries its namespace and name"), nil
}

// adoption is the plan of a resource that names its user in spec.userID.
func (p *planner) adoption(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, key credentials.Key, listed []remote.User) (planEntry, error) {
	user, found, err := p.user(ctx, key, obj.Spec.UserID)
	switch {
	case err != nil:
		return planEntry{}, err
	case !found:
		return planEntry{Action: planRefused, Reason: surgev1alpha1.ReasonAdoptedUserNotFound,
			Detail: fmt.Sprintf("Surge has no end user %s: check spec.userID", obj.Spec.UserID)}, nil
	case !slices.ContainsFunc(listed, func(u remote.User) bool { return u.ID == user.ID }):
		return planEntry{Action: planRefused, Reason: surgev1alpha1.ReasonUserNotInAccount,
			Detail: fmt.Sprintf("end user %s is not in account %s", user.ID, obj.Spec.AccountID)}, nil
	}
	holder, claimed, err := p.holder(ctx, obj, user)
	if err != nil {
		return planEntry{}, err
	}
	if claimed {
		return planEntry{Action: planRefused, Reason: surgev1alpha1.ReasonUserClaimed, UserID: user.ID,
			Detail: fmt.Sprintf("end user %s is managed by SurgeEndUser %s", user.ID, holder.Name)}, nil
	}
	entry := changeOf(obj, user, remote.FieldsOf(obj))
	entry.Action = planAdopt
	entry.Detail = fmt.Sprintf("end user %s, named by spec.userID%s", user.ID, changeDetail(obj, entry.Fields))
	return entry, nil
}

// creation is the plan of a resource that finds no user: why is what was
// looked for.
func (p *planner) creation(obj *surgev1alpha1.SurgeEndUser, why string) planEntry {
	if !obj.Spec.Allows(surgev1alpha1.ManagementCreate) {
		return planEntry{Action: planRefused, Reason: surgev1alpha1.ReasonNotObserved,
			Detail: fmt.Sprintf("%s, and managementPolicies %q do not allow Create", why, obj.Spec.ManagementPolicies)}
	}
	return planEntry{Action: planCreate, Detail: fmt.Sprintf("a new end user in account %s (%s)", obj.Spec.AccountID, why)}
}

// changeOf is what the operator does to a user it holds: update the fields
// that differ, when its policies allow it.
func changeOf(obj *surgev1alpha1.SurgeEndUser, user remote.User, desired remote.Fields) planEntry {
	fields := remote.DifferingFields(user, desired)
	entry := planEntry{Action: planUnchanged, UserID: user.ID, Fields: fields, Detail: "end user " + user.ID + changeDetail(obj, fields)}
	if len(fields) > 0 && obj.Spec.Allows(surgev1alpha1.ManagementUpdate) {
		entry.Action = planUpdate
	}
	return entry
}

func changeDetail(obj *surgev1alpha1.SurgeEndUser, fields []string) string {
	switch {
	case len(fields) == 0:
		return ""
	case obj.Spec.Allows(surgev1alpha1.ManagementUpdate):
		return ": updates " + strings.Join(fields, ", ")
	}
	return ": differs in " + strings.Join(fields, ", ") + ", reported as Synced=False (managementPolicies do not allow Update)"
}

// holder is the live resource that keeps user from obj, as the operator's
// claim rules decide.
func (p *planner) holder(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, user remote.User) (claims.Claimant, bool, error) {
	var naming []*surgev1alpha1.SurgeEndUser
	for _, other := range p.all {
		if other.Spec.UserID == user.ID || other.Status.UserID == user.ID {
			naming = append(naming, other)
		}
	}
	others, err := claims.Claimants(user, claims.Resources{
		Naming: naming,
		Tagged: func(key types.NamespacedName) (*surgev1alpha1.SurgeEndUser, error) { return p.live(key), nil },
		Admitted: func(other *surgev1alpha1.SurgeEndUser) (bool, error) {
			err := p.keys.Admits(ctx, other)
			if _, refused := errors.AsType[*credentials.Refusal](err); refused {
				return false, nil
			}
			return err == nil, err
		},
	})
	if err != nil {
		return claims.Claimant{}, false, err
	}
	holder, claimed := claims.Holder(claims.Of(obj, claims.HoldOf(obj, user)), others)
	return holder, claimed, nil
}

// user reads a user; found is false when Surge says it does not exist.
func (p *planner) user(ctx context.Context, key credentials.Key, userID string) (remote.User, bool, error) {
	user, err := key.Client.GetUser(ctx, userID)
	if surge.IsNotFound(err) {
		return remote.User{}, false, nil
	}
	if err != nil {
		return remote.User{}, false, err
	}
	return remote.UserOf(user), true, nil
}

// listing is every user of an account, read once per key and account.
func (p *planner) listing(ctx context.Context, key credentials.Key, account string) ([]remote.User, error) {
	at := accountListing{scope: key.Scope, account: account}
	if users, read := p.listings[at]; read {
		return users, p.listingOf[at]
	}
	var users []remote.User
	err := key.Client.EachUser(ctx, account, func(u surge.User) bool {
		users = append(users, remote.UserOf(u))
		return true
	})
	p.listings[at], p.listingOf[at] = users, err
	return users, err
}

func keyOfEndUser(obj *surgev1alpha1.SurgeEndUser) types.NamespacedName {
	return types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
}
