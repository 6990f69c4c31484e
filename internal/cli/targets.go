package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

var errNoTarget = errors.New("name one or more SurgeEndUsers, or select them with --all or --selector")

// selection is how renew, pause and resume pick SurgeEndUsers besides by
// name, as kubectl annotate does.
type selection struct {
	all           bool
	allNamespaces bool
	selector      string
}

func (s *selection) bind(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&s.all, "all", false, "Every SurgeEndUser of the namespace.")
	cmd.Flags().BoolVarP(&s.allNamespaces, "all-namespaces", "A", false, "With --all or --selector: in every namespace.")
	cmd.Flags().StringVarP(&s.selector, "selector", "l", "", "The SurgeEndUsers whose labels match this selector, such as team=billing.")
}

// targets returns the SurgeEndUsers named, or those the selection picks.
func (o *options) targets(ctx context.Context, c client.Client, names []string, s selection) ([]surgev1alpha1.SurgeEndUser, error) {
	byName := len(names) > 0
	bySelection := s.all || s.selector != ""
	switch {
	case byName && bySelection:
		return nil, errors.New("name SurgeEndUsers or select them with --all or --selector, not both")
	case !byName && !bySelection:
		return nil, errNoTarget
	case s.allNamespaces && !bySelection:
		return nil, errors.New("--all-namespaces goes with --all or --selector")
	}
	namespace, err := o.namespace()
	if err != nil {
		return nil, err
	}
	if byName {
		found := make([]surgev1alpha1.SurgeEndUser, 0, len(names))
		for _, name := range names {
			obj := surgev1alpha1.SurgeEndUser{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &obj); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("SurgeEndUser %s/%s not found", namespace, name)
				}
				return nil, explain(err)
			}
			found = append(found, obj)
		}
		return found, nil
	}
	selector := labels.Everything()
	if s.selector != "" {
		if selector, err = labels.Parse(s.selector); err != nil {
			return nil, fmt.Errorf("--selector: %w", err)
		}
	}
	listOptions := []client.ListOption{client.MatchingLabelsSelector{Selector: selector}}
	if !s.allNamespaces {
		listOptions = append(listOptions, client.InNamespace(namespace))
	}
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := c.List(ctx, list, listOptions...); err != nil {
		return nil, explain(err)
	}
	if len(list.Items) == 0 {
		return nil, errors.New("no SurgeEndUser matches")
	}
	return list.Items, nil
}

func keyString(obj client.Object) string {
	return obj.GetNamespace() + "/" + obj.GetName()
}
