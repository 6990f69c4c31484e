package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
)

// indexProjectRef indexes SurgeEndUsers by the project they name, as
// credentials.Ref.String() reads it.
const indexProjectRef = "surge.app/project-ref"

// indexEndUserSecrets indexes token Secrets by the uid their LabelEndUser
// names: the Secrets of one end user are a lookup, not a scan of every
// Secret of its namespace at each reconcile.
const indexEndUserSecrets = "surge.app/end-user"

// registerIndexes registers the cache indexes the reconcilers look up.
func registerIndexes(mgr manager.Manager) error {
	if err := indexClusterWide(mgr.GetCache(), &surgev1alpha1.SurgeEndUser{}, indexUserID, userIDsOf); err != nil {
		return fmt.Errorf("indexing SurgeEndUsers by user id: %w", err)
	}
	if err := indexClusterWide(mgr.GetCache(), &corev1.Secret{}, indexEndUserSecrets, endUserOfSecret); err != nil {
		return fmt.Errorf("indexing token Secrets by end user: %w", err)
	}
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(context.Background(), &surgev1alpha1.SurgeEndUser{}, indexProjectRef, projectRefOf); err != nil {
		return fmt.Errorf("indexing SurgeEndUsers by project: %w", err)
	}
	return nil
}

// Names and keys of the field indexes controller-runtime's cache looks up
// for client.MatchingFields: "field:<field>", keyed by "<namespace>/<value>",
// or "__all_namespaces/<value>" for a List across namespaces.
const (
	fieldIndexPrefix         = "field:"
	allNamespacesIndexPrefix = "__all_namespaces/"
)

// indexClusterWide registers a field index that serves only Lists across
// namespaces. IndexField keys each value twice, with and without its
// namespace; an index of one value per end user, looked up across
// namespaces only, would otherwise hold twice the entries it needs. A List
// limited to a namespace finds nothing in it.
func indexClusterWide(informers cache.Informers, obj client.Object, field string, values client.IndexerFunc) error {
	informer, err := informers.GetInformer(context.Background(), obj)
	if err != nil {
		return err
	}
	return informer.AddIndexers(toolscache.Indexers{fieldIndexPrefix + field: func(o any) ([]string, error) {
		object, ok := o.(client.Object)
		if !ok {
			return nil, nil
		}
		keys := values(object)
		for i, value := range keys {
			keys[i] = allNamespacesIndexPrefix + value
		}
		return keys, nil
	}})
}

func projectRefOf(o client.Object) []string {
	obj, ok := o.(*surgev1alpha1.SurgeEndUser)
	if !ok {
		return nil
	}
	if ref, named := credentials.RefOf(obj); named {
		return []string{ref.String()}
	}
	return nil
}

// refOfProject is the reference SurgeEndUsers make to a project object.
func refOfProject(o client.Object) credentials.Ref {
	if _, cluster := o.(*surgev1alpha1.ClusterSurgeProject); cluster {
		return credentials.Ref{Kind: surgev1alpha1.KindClusterSurgeProject, Name: o.GetName()}
	}
	return credentials.Ref{Kind: surgev1alpha1.KindSurgeProject, Namespace: o.GetNamespace(), Name: o.GetName()}
}

// endUsersUsing lists the SurgeEndUsers that name the project.
func endUsersUsing(ctx context.Context, reader client.Reader, ref credentials.Ref) ([]surgev1alpha1.SurgeEndUser, error) {
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := reader.List(ctx, list, client.MatchingFields{indexProjectRef: ref.String()}); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// endUsersOfProject maps a changed project to the SurgeEndUsers that use it,
// so that they recover, or stop, at once.
func (r *SurgeEndUserReconciler) endUsersOfProject(ctx context.Context, project client.Object) []reconcile.Request {
	endUsers, err := endUsersUsing(ctx, r.Client, refOfProject(project))
	if err != nil {
		return nil
	}
	return requestsFor(endUsers)
}

// endUsersOfNamespace maps a namespace whose labels changed to its
// SurgeEndUsers that use a ClusterSurgeProject, whose namespaceSelector may
// now decide otherwise.
func (r *SurgeEndUserReconciler) endUsersOfNamespace(ctx context.Context, namespace client.Object) []reconcile.Request {
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := r.List(ctx, list, client.InNamespace(namespace.GetName())); err != nil {
		return nil
	}
	var usingClusterProjects []surgev1alpha1.SurgeEndUser
	for _, item := range list.Items {
		if ref := item.Spec.ProjectRef; ref != nil && ref.Kind == surgev1alpha1.KindClusterSurgeProject {
			usingClusterProjects = append(usingClusterProjects, item)
		}
	}
	return requestsFor(usingClusterProjects)
}

func requestsFor(endUsers []surgev1alpha1.SurgeEndUser) []reconcile.Request {
	requests := make([]reconcile.Request, 0, len(endUsers))
	for i := range endUsers {
		requests = append(requests, reconcile.Request{NamespacedName: keyOf(&endUsers[i])})
	}
	return requests
}
