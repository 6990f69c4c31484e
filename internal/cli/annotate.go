package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// setAnnotation sets key to value on obj, or removes it when value is nil,
// with a merge patch of that key alone: annotations others write in the
// meantime stay, and no resourceVersion can conflict.
func setAnnotation(ctx context.Context, c client.Client, obj *surgev1alpha1.SurgeEndUser, key string, value *string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{key: value}}})
	if err != nil {
		return err
	}
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

func newRenewCommand(o *options) *cobra.Command {
	var s selection
	var waitFor bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "renew NAME...",
		Short: "Mint a new component token now, whatever the renewal time",
		Long: `renew asks the operator to mint a new component token for each SurgeEndUser
at once, as after a token leaked: it gives the annotation
` + surgev1alpha1.AnnotationRenewTokenRequestedAt + ` a new value, the current time.
The operator answers it once, and records the answer in
status.token.renewalRequest. The old token stays valid until it expires.`,
		Example: `  kubectl surge renew ada-lovelace --wait
  kubectl surge renew --all -n billing`,
		RunE: func(cmd *cobra.Command, names []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			objs, err := o.targets(cmd.Context(), c, names, s)
			if err != nil {
				return err
			}
			request := o.now().UTC().Format(time.RFC3339Nano)
			var failed []string
			var requested []*surgev1alpha1.SurgeEndUser
			for i := range objs {
				obj := &objs[i]
				if obj.Spec.TokenSecret == nil {
					fmt.Fprintf(o.streams.ErrOut, "SurgeEndUser %s has no spec.tokenSecret: there is no token to renew\n", keyString(obj))
					failed = append(failed, obj.Name)
					continue
				}
				if err := setAnnotation(cmd.Context(), c, obj, surgev1alpha1.AnnotationRenewTokenRequestedAt, &request); err != nil {
					fmt.Fprintf(o.streams.ErrOut, "SurgeEndUser %s: %v\n", keyString(obj), err)
					failed = append(failed, obj.Name)
					continue
				}
				fmt.Fprintf(o.streams.Out, "SurgeEndUser %s: new token requested\n", keyString(obj))
				if obj.Annotations[surgev1alpha1.AnnotationPaused] == "true" {
					fmt.Fprintf(o.streams.ErrOut, "SurgeEndUser %s is paused: the token is minted once it is resumed (kubectl surge resume %s)\n", keyString(obj), obj.Name)
				}
				requested = append(requested, obj)
			}
			if waitFor {
				for _, obj := range requested {
					if err := o.waitForRenewal(cmd.Context(), c, obj, request, timeout); err != nil {
						fmt.Fprintf(o.streams.ErrOut, "SurgeEndUser %s: %v\n", keyString(obj), err)
						failed = append(failed, obj.Name)
					}
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d SurgeEndUsers not renewed", len(failed), len(objs))
			}
			return nil
		},
	}
	s.bind(cmd)
	cmd.Flags().BoolVar(&waitFor, "wait", false, "Wait until the operator has minted the new token.")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "With --wait: how long to wait for each SurgeEndUser.")
	return cmd
}

// waitForRenewal waits until status.token answers request.
func (o *options) waitForRenewal(ctx context.Context, c client.Client, obj *surgev1alpha1.SurgeEndUser, request string, timeout time.Duration) error {
	current := &surgev1alpha1.SurgeEndUser{}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), current); err != nil {
			return false, err
		}
		token := current.Status.Token
		return token != nil && token.RenewalRequest == request, nil
	})
	if err == nil {
		token := current.Status.Token
		fmt.Fprintf(o.streams.Out, "SurgeEndUser %s: new token in Secret %s, expires %s\n",
			keyString(obj), token.SecretName, token.ExpiresAt.UTC().Format(time.RFC3339))
		return nil
	}
	if !wait.Interrupted(err) {
		return err
	}
	why := "the operator has not answered: is it running, and does it watch this namespace?"
	if ready := apimeta.FindStatusCondition(current.Status.Conditions, surgev1alpha1.ConditionReady); ready != nil &&
		(ready.Status != "True" || ready.Reason == surgev1alpha1.ReasonTokenRenewalFailing) {
		why = fmt.Sprintf("Ready is %s (%s): %s", ready.Status, ready.Reason, ready.Message)
	}
	return errors.New("no new token within " + timeout.String() + ": " + why)
}

func newPauseCommand(o *options, pause bool) *cobra.Command {
	var s selection
	use, short, long := "pause NAME...", "Stop every call to Surge for SurgeEndUsers", `pause sets the annotation `+surgev1alpha1.AnnotationPaused+`: "true": the operator makes no
call to Surge for the resource, its deletion included (a deleted resource
waits), until it is resumed. Its status shows a Paused condition.`
	if !pause {
		use, short, long = "resume NAME...", "Let paused SurgeEndUsers call Surge again", `resume removes the annotation `+surgev1alpha1.AnnotationPaused+`; the next check goes to
Surge.`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		RunE: func(cmd *cobra.Command, names []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			objs, err := o.targets(cmd.Context(), c, names, s)
			if err != nil {
				return err
			}
			var value *string
			if pause {
				paused := "true"
				value = &paused
			}
			failed := 0
			for i := range objs {
				obj := &objs[i]
				was := obj.Annotations[surgev1alpha1.AnnotationPaused] == "true"
				if err := setAnnotation(cmd.Context(), c, obj, surgev1alpha1.AnnotationPaused, value); err != nil {
					fmt.Fprintf(o.streams.ErrOut, "SurgeEndUser %s: %v\n", keyString(obj), err)
					failed++
					continue
				}
				fmt.Fprintf(o.streams.Out, "SurgeEndUser %s: %s\n", keyString(obj), pauseOutcome(pause, was))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d SurgeEndUsers not changed", failed, len(objs))
			}
			return nil
		},
	}
	s.bind(cmd)
	return cmd
}

func pauseOutcome(pause, wasPaused bool) string {
	switch {
	case pause && wasPaused:
		return "already paused"
	case pause:
		return "paused"
	case wasPaused:
		return "resumed"
	}
	return "was not paused"
}
