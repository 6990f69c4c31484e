package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

func newReleaseDeletionsCommand(o *options) *cobra.Command {
	var cluster bool
	cmd := &cobra.Command{
		Use:   "release-deletions PROJECT",
		Short: "Let the deletions the mass-deletion brake holds go ahead",
		Long: `release-deletions lets every deletion of a project's SurgeEndUsers that was
asked for until now go ahead, past the mass-deletion brake: the end users are
deleted in Surge, which cannot be undone. It writes the current time into the
annotation ` + surgev1alpha1.AnnotationReleaseDeletions + ` of the SurgeProject (in the
current namespace) or, with --cluster, of the ClusterSurgeProject, where it
stays as a record of who released what and when (the API server's audit log
names the person). Deletions asked for later count against the brake afresh.`,
		Example: `  kubectl surge release-deletions surge -n billing
  kubectl surge release-deletions --cluster customers`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var project client.Object = &surgev1alpha1.ClusterSurgeProject{}
			kind, key := surgev1alpha1.KindClusterSurgeProject, client.ObjectKey{Name: args[0]}
			if !cluster {
				namespace, err := o.namespace()
				if err != nil {
					return err
				}
				project = &surgev1alpha1.SurgeProject{}
				kind, key = surgev1alpha1.KindSurgeProject, client.ObjectKey{Namespace: namespace, Name: args[0]}
			}
			if err := c.Get(cmd.Context(), key, project); err != nil {
				return fmt.Errorf("reading %s %s: %w", kind, key, err)
			}
			releasedAt := o.now().UTC().Truncate(time.Second).Add(time.Second).Format(time.RFC3339)
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{surgev1alpha1.AnnotationReleaseDeletions: releasedAt}}})
			if err != nil {
				return err
			}
			if err := c.Patch(cmd.Context(), project, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return fmt.Errorf("releasing the deletions of %s %s: %w", kind, key, err)
			}
			fmt.Fprintf(o.streams.Out, "%s %s: deletions asked for until %s released\n", kind, key, releasedAt)
			return nil
		},
	}
	cmd.Flags().BoolVar(&cluster, "cluster", false, "PROJECT is a ClusterSurgeProject.")
	return cmd
}
