// Package cli is kubectl surge, a kubectl plugin for SurgeEndUsers: why one
// is not Ready, a new component token now, a pause during an incident, and
// the onboarding of an existing Surge account into Git. cmd/kubectl-surge
// runs it; kubectl finds that binary on PATH as the plugin "surge".
//
// It takes kubectl's connection flags (--kubeconfig, --context,
// --namespace/-n and the rest of client-go's clientcmd flags), which kubectl
// hands on to a plugin unchanged.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/version"
)

// Streams are where a command reads and writes: YAML and reports to Out,
// warnings and progress to ErrOut, so that Out can be redirected to a file.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// options are what every command shares: the cluster to talk to, and the
// clock, which tests replace.
type options struct {
	streams    Streams
	kubeconfig clientcmd.ClientConfig
	now        func() time.Time
	// getenv reads the environment; tests replace it.
	getenv func(string) string
}

// NewCommand returns the kubectl surge command with its subcommands. getenv
// reads SURGE_API_KEY and SURGE_API_URL for import (os.Getenv in the
// binary).
func NewCommand(streams Streams, getenv func(string) string) *cobra.Command {
	o := &options{streams: streams, now: time.Now, getenv: getenv}
	root := &cobra.Command{
		Use: "kubectl-surge",
		Annotations: map[string]string{
			// Help reads "kubectl surge", as kubectl runs the plugin.
			cobra.CommandDisplayNameAnnotation: "kubectl surge",
		},
		Short: "Inspect and operate the SurgeEndUsers of surge-operator",
		Long: `kubectl surge inspects and operates the SurgeEndUsers of surge-operator:
why one is not Ready, a new component token now, a pause during an incident,
and the onboarding of an existing Surge account into Git.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)

	loadingRules := clientcmd.NewDefaultClientConfigLoadingRules()
	overrides := &clientcmd.ConfigOverrides{}
	flags := root.PersistentFlags()
	flags.StringVar(&loadingRules.ExplicitPath, "kubeconfig", "", "Path to the kubeconfig file to use.")
	clientcmd.BindOverrideFlags(overrides, flags, clientcmd.RecommendedConfigOverrideFlags(""))
	o.kubeconfig = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loadingRules, overrides)

	root.AddCommand(
		newStatusCommand(o),
		newCheckCommand(o),
		newRenewCommand(o),
		newPauseCommand(o, true),
		newPauseCommand(o, false),
		newImportCommand(o),
		newPlanCommand(o),
		newReleaseDeletionsCommand(o),
		newVersionCommand(o),
	)
	// A wrong argument or flag fails before any call, and shows how the
	// command is used.
	root.SetFlagErrorFunc(withUsage)
	for _, cmd := range root.Commands() {
		if check := cmd.Args; check != nil {
			cmd.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return withUsage(cmd, err)
				}
				return nil
			}
		}
	}
	return root
}

// withUsage adds the command's usage to an error in how it was called.
func withUsage(cmd *cobra.Command, err error) error {
	return fmt.Errorf("%w\n\n%s", err, strings.TrimRight(cmd.UsageString(), "\n"))
}

// Run runs the command line args and returns the process's exit code,
// having printed any error.
func Run(ctx context.Context, args []string, streams Streams, getenv func(string) string) int {
	cmd := NewCommand(streams, getenv)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if exit, ok := errors.AsType[*exitError](err); ok {
		return exit.code
	}
	if err != nil {
		fmt.Fprintln(streams.ErrOut, "error:", err)
		return 1
	}
	return 0
}

// exitError ends a command that printed all it had to say with an exit
// code other than 1.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

// scheme knows the operator's kinds and Kubernetes' own (events, Secrets,
// namespaces).
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := surgev1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// client connects to the cluster the flags name.
func (o *options) client() (client.Client, error) {
	cfg, err := o.kubeconfig.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "kubectl-surge/" + version.Get().Version
	return client.New(cfg, client.Options{Scheme: scheme()})
}

// namespace is the namespace of --namespace, else the kubeconfig context's,
// else default.
func (o *options) namespace() (string, error) {
	namespace, _, err := o.kubeconfig.Namespace()
	return namespace, err
}

// explain turns the errors a cluster without the operator gives into what
// to do about them.
func explain(err error) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("the cluster does not know SurgeEndUsers: install surge-operator's CRDs (%w)", err)
	}
	return err
}

func newVersionCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit and the source's date of kubectl surge",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprint(o.streams.Out, version.Get())
			return err
		},
	}
}
