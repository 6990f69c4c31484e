package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/remote"
	"github.com/surge-operator/surge-operator/internal/report"
)

// ProjectReconciler keeps a project's status (is its key readable and
// accepted, how many SurgeEndUsers use it) and its in-use finalizer. One
// runs for each project kind.
type ProjectReconciler struct {
	client.Client
	// APIReader reads Secrets, which the cache does not hold.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Remote checks a project's key, and forgets a project that is gone.
	Remote Projects
	// Kind is KindSurgeProject or KindClusterSurgeProject.
	Kind string
	// RecheckInterval is how often the key is checked again: its Secret
	// is read on demand, not watched.
	RecheckInterval time.Duration
	// RemoteTimeout bounds the key check.
	RemoteTimeout time.Duration
}

// +kubebuilder:rbac:groups=surge.app,resources=surgeprojects;clustersurgeprojects,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=surge.app,resources=surgeprojects/status;clustersurgeprojects/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=surge.app,resources=surgeprojects/finalizers;clustersurgeprojects/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// projectObject is either project kind.
type projectObject interface {
	client.Object
	GetObjectMeta() metav1.Object
	GetStatus() *surgev1alpha1.SurgeProjectStatus
}

// projectReport is what one reconcile tells of a project: status and events
// are stored through it alone.
type projectReport = report.Report[surgev1alpha1.SurgeProjectStatus, projectObject]

func (r *ProjectReconciler) newReport(obj projectObject) *projectReport {
	return report.New[surgev1alpha1.SurgeProjectStatus](report.Writer{Client: r.Client, Recorder: r.Recorder}, obj)
}

func (r *ProjectReconciler) newObject() projectObject {
	if r.Kind == surgev1alpha1.KindClusterSurgeProject {
		return &surgev1alpha1.ClusterSurgeProject{}
	}
	return &surgev1alpha1.SurgeProject{}
}

// Reconcile records whether the project's key works and how many
// SurgeEndUsers use it, and lets a deleted project go once none does.
func (r *ProjectReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := r.newObject()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ref := refOfProject(obj)
	endUsers, err := endUsersUsing(ctx, r.Client, ref)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return r.reconcileDelete(ctx, obj, ref, endUsers)
	}
	if controllerutil.AddFinalizer(obj, surgev1alpha1.ProjectFinalizer) {
		if err := r.Update(ctx, obj); err != nil {
			return ctrl.Result{}, err
		}
	}

	rep := r.newReport(obj)
	status := obj.GetStatus()
	status.EndUsers = int32(len(endUsers))
	outcome := summarize(r.checkKey(ctx, ref), "Surge accepts the API key", r.RecheckInterval, isProjectReady(rep.Stored()))
	if outcome.ready.Status == metav1.ConditionTrue {
		outcome.ready.Reason = surgev1alpha1.ReasonKeyAccepted
	}
	outcome.applyTo(&status.Conditions, &status.ObservedGeneration, obj.GetGeneration())
	if err := rep.Write(ctx); err != nil {
		return ctrl.Result{}, err
	}
	// After the status: a Secret that refuses the guard (an admission
	// policy, say) must not keep the project's state from showing.
	return ctrl.Result{RequeueAfter: r.RecheckInterval}, r.guardKey(ctx, obj, true)
}

// maxHoldersNamed bounds the SurgeEndUsers a project's condition names.
const maxHoldersNamed = 5

// holders names the SurgeEndUsers that hold a project, the first few of
// them in namespace and name order.
func holders(endUsers []surgev1alpha1.SurgeEndUser) string {
	names := make([]string, 0, len(endUsers))
	for i := range endUsers {
		names = append(names, endUsers[i].Namespace+"/"+endUsers[i].Name)
	}
	slices.Sort(names)
	if len(names) > maxHoldersNamed {
		return strings.Join(names[:maxHoldersNamed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxHoldersNamed)
	}
	return strings.Join(names, ", ")
}

func isProjectReady(status surgev1alpha1.SurgeProjectStatus) bool {
	return apimeta.IsStatusConditionTrue(status.Conditions, surgev1alpha1.ConditionReady)
}

// checkKey reads the project's key again and asks Surge whether it accepts
// it. The outcome is classified as an end user's would be.
func (r *ProjectReconciler) checkKey(ctx context.Context, ref credentials.Ref) error {
	remoteCtx, cancel := context.WithTimeout(ctx, r.RemoteTimeout)
	defer cancel()
	err := r.Remote.CheckKey(remoteCtx, ref)
	if kind, fromSurge := remote.KindOf(err); fromSurge && kind == remote.KeyRejected {
		return stalled(surgev1alpha1.ReasonAPIKeyRejected, "Surge rejected the API key of %s: put a valid key in its Secret; it is picked up without a restart", ref)
	}
	if _, fromSurge := remote.KindOf(err); fromSurge {
		return classifyRemoteError("check the API key", err, &surgev1alpha1.SurgeEndUserSpec{})
	}
	return classifyCredentialsError(err)
}

// reconcileDelete keeps the finalizer while SurgeEndUsers use the project:
// their deletions need its key.
func (r *ProjectReconciler) reconcileDelete(ctx context.Context, obj projectObject, ref credentials.Ref, endUsers []surgev1alpha1.SurgeEndUser) (ctrl.Result, error) {
	if len(endUsers) > 0 {
		rep := r.newReport(obj)
		message := fmt.Sprintf("Deletion waits for the %d SurgeEndUsers that use %s to be deleted (%s): their deletions need its key", len(endUsers), ref, holders(endUsers))
		outcome := outcomeResult{ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: surgev1alpha1.ReasonInUse, Message: message},
			reconciling: &metav1.Condition{Type: surgev1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: surgev1alpha1.ReasonInUse, Message: message}}
		status := obj.GetStatus()
		status.EndUsers = int32(len(endUsers))
		outcome.applyTo(&status.Conditions, &status.ObservedGeneration, obj.GetGeneration())
		return ctrl.Result{}, rep.Write(ctx)
	}
	if err := r.guardKey(ctx, obj, false); err != nil {
		return ctrl.Result{}, err
	}
	r.Remote.ForgetProject(ref)
	if controllerutil.RemoveFinalizer(obj, surgev1alpha1.ProjectFinalizer) {
		return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, obj))
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler for its kind. A project is
// reconciled again whenever a SurgeEndUser starts or stops using it.
func (r *ProjectReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Kind == surgev1alpha1.KindClusterSurgeProject {
		b = b.For(&surgev1alpha1.ClusterSurgeProject{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	} else {
		b = b.For(&surgev1alpha1.SurgeProject{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	return b.
		Watches(&surgev1alpha1.SurgeEndUser{}, handler.EnqueueRequestsFromMapFunc(r.projectOfEndUser),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Named(r.Kind).
		Complete(r)
}

func (r *ProjectReconciler) projectOfEndUser(_ context.Context, o client.Object) []reconcile.Request {
	obj, ok := o.(*surgev1alpha1.SurgeEndUser)
	if !ok {
		return nil
	}
	ref, named := credentials.RefOf(obj)
	if !named || ref.Kind != r.Kind {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}}}
}
