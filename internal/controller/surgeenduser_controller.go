// Package controller holds the reconciler that keeps Surge end users equal to
// their SurgeEndUser resources.
package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/intent"
	"github.com/surge-operator/surge-operator/internal/metrics"
	"github.com/surge-operator/surge-operator/internal/remote"
	"github.com/surge-operator/surge-operator/internal/report"
)

// conflictRetryDelay is how soon a reconcile that lost a write race on the
// Kubernetes side tries again; the newer object is already on its way.
const conflictRetryDelay = time.Second

// SurgeEndUserReconciler makes Surge's end users match SurgeEndUser resources.
type SurgeEndUserReconciler struct {
	client.Client
	// APIReader reads around the cache, which holds slim SurgeEndUsers and
	// only a summary of the operator's own Secrets.
	APIReader client.Reader
	// Remote connects each resource to Surge, through the key its
	// project names.
	Remote   Connector
	Recorder events.EventRecorder
	Clock    clock.PassiveClock

	// ResyncInterval is how often a settled resource is compared with Surge.
	ResyncInterval time.Duration
	// RemoteTimeout bounds all the Surge calls of one reconcile.
	RemoteTimeout time.Duration
	// MaxConcurrentReconciles is how many resources are reconciled at once.
	MaxConcurrentReconciles int

	// SettleTime is how long after a request was sent Surge may still
	// commit it: the client's attempt timeout plus a margin. A create whose
	// answer was lost is sent again only after a listing of the account
	// that started later than that shows no user, and a resource is checked
	// again that long after an update, which a late attempt may undo.
	SettleTime time.Duration
	// Brake holds the deletions of users in Surge past a threshold per
	// project; nil holds none.
	Brake *DeletionBrake
	// TerminatingNamespaceGrace is how long a SurgeEndUser whose namespace
	// is being deleted waits for a stall of its deletion to be lifted (a
	// key Surge rejects, a key Secret gone) before it goes and leaves its
	// user in Surge: a namespace must finish being deleted.
	TerminatingNamespaceGrace time.Duration
	// Selector limits the resources reconciled to those whose labels match
	// (a shard's share); nil reconciles every one.
	Selector labels.Selector
	// IgnoreClusterProjects leaves ClusterSurgeProjects unwatched, for an
	// installation that serves only some namespaces.
	IgnoreClusterProjects bool
	// Drain is how long a reconcile under way when the manager stops may
	// go on: its Surge call in flight finishes and its answer is recorded,
	// instead of being cut off and left for the next leader to search for.
	Drain time.Duration

	checks         *checkTracker
	intents        *intent.Ledger
	unstoredTokens *unstoredTokens
}

// +kubebuilder:rbac:groups=surge.app,resources=surgeendusers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=surge.app,resources=surgeendusers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=surge.app,resources=surgeendusers/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one SurgeEndUser's remote user in line with its spec.
func (r *SurgeEndUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx, stop := outliving(ctx, r.Drain)
	defer stop()
	obj := &surgev1alpha1.SurgeEndUser{}
	// The cache keeps a slim copy (SlimCachedEndUser).
	if err := r.APIReader.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.checks.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !r.reconciles(obj) {
		// Another instance's share: relabelled away, or enqueued by a
		// project, a namespace or a Secret.
		r.checks.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	rep := r.newReport(obj)
	if obj.Annotations[surgev1alpha1.AnnotationPaused] == "true" {
		return r.reconcilePaused(ctx, rep, obj)
	}
	api, credentialsErr := r.surgeFor(ctx, obj)
	if !obj.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, api, credentialsErr, rep, obj)
	}
	if credentialsErr != nil {
		// Checked at every reconcile, so that a change of the project takes
		// effect at once, both ways.
		r.checks.forget(req.NamespacedName)
		return r.finish(ctx, rep, obj, credentialsErr, false)
	}

	due := r.dueWork(ctx, obj)
	if !due.user {
		if err := r.restoreFinalizer(ctx, obj); err != nil {
			return ctrl.Result{}, err
		}
	}
	log.FromContext(ctx).V(1).Info("Reconciling", "userCheckDue", due.user, "tokenDue", due.token)
	if !due.user && !due.token {
		return ctrl.Result{RequeueAfter: due.wait, Priority: ptr.To(handler.LowPriority)}, nil
	}
	if err := r.announceStart(ctx, rep, obj); err != nil {
		return ctrl.Result{}, err
	}
	result, err := r.finish(ctx, rep, obj, r.runSteps(ctx, api, rep, obj, due), due.user)
	// The stored status is the last one written: before the create, when
	// the resource vanished since.
	if apierrors.IsNotFound(err) && rep.Stored().UserID == "" && obj.Status.UserID != "" {
		r.deleteUserOfVanished(ctx, api, obj)
	}
	return result, err
}

// reconciles says whether obj is this instance's to reconcile.
func (r *SurgeEndUserReconciler) reconciles(obj client.Object) bool {
	return r.Selector == nil || r.Selector.Matches(labels.Set(obj.GetLabels()))
}

// joinedShare lets through the relabelling that brings a resource into
// this instance's share: it reconciles the resource at once, as the
// instance that had it did.
func (r *SurgeEndUserReconciler) joinedShare() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !r.reconciles(e.ObjectOld) && r.reconciles(e.ObjectNew)
		},
	}
}

// outliving returns a context that ends drain after ctx ends, or when stop
// is called: a reconcile under way when the manager stops finishes its
// Surge calls and records their answers.
func outliving(ctx context.Context, drain time.Duration) (context.Context, context.CancelFunc) {
	detached, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// A timer that fires after stop cancels what is cancelled already.
	unhook := context.AfterFunc(ctx, func() { time.AfterFunc(drain, cancel) })
	return detached, func() {
		unhook()
		cancel()
	}
}

// deleteUserOfVanished deletes the user that a create made for a resource
// that was gone by the time its id could be recorded, say because its
// finalizer was removed by hand meanwhile: no reconcile would find the user
// again. A NotFound from anything but the resource itself, or a resource
// re-created under the same name meanwhile, leaves the user alone.
func (r *SurgeEndUserReconciler) deleteUserOfVanished(ctx context.Context, api EndUserRemote, obj *surgev1alpha1.SurgeEndUser) {
	if obj.Spec.LeavesUserInSurge() {
		return
	}
	current := &surgev1alpha1.SurgeEndUser{}
	err := r.APIReader.Get(ctx, keyOf(obj), current)
	if !gone(obj, current, err) {
		if err != nil && !apierrors.IsNotFound(err) {
			log.FromContext(ctx).Error(err, "Cannot tell whether a SurgeEndUser is gone; leaving its end user", "userID", obj.Status.UserID)
		}
		return
	}
	remoteCtx, cancel := context.WithTimeout(ctx, r.RemoteTimeout)
	defer cancel()
	if err := api.Delete(remoteCtx, obj.Status.UserID); err != nil {
		log.FromContext(ctx).Error(err, "Cannot delete the end user of a SurgeEndUser that is gone", "userID", obj.Status.UserID)
		return
	}
	log.FromContext(ctx).Info("Deleted the end user of a SurgeEndUser that went while it was being created", "userID", obj.Status.UserID)
}

// gone says whether obj no longer exists, from a read of its name that
// returned current or err: a resource of the same name with another uid is
// another resource.
func gone(obj, current *surgev1alpha1.SurgeEndUser, err error) bool {
	if err != nil {
		return apierrors.IsNotFound(err)
	}
	return current.UID != obj.UID
}

// dueWork is what a reconcile must do now: the user check, the token step,
// or nothing until wait has passed.
type dueWork struct {
	user, token bool
	// resync is true when the user check only confirms a settled
	// resource: its reads give way to new work.
	resync bool
	wait   time.Duration
	// standingStall is the stall the last user check ended in, which holds
	// until the next one.
	standingStall error
}

func (r *SurgeEndUserReconciler) dueWork(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) dueWork {
	var due dueWork
	var userWait, tokenWait time.Duration
	due.user, userWait = r.checks.due(obj, r.Clock.Now())
	if due.user {
		due.resync = r.checks.resync(obj)
		return due
	}
	// Between user checks the token is looked after on its own, whatever
	// became of its last renewal, under the outcome of the last check.
	due.standingStall = r.checks.standingStall(obj)
	if obj.Status.UserID != "" && tokenStepRuns(due.standingStall, obj.Status.UserID) {
		due.token, tokenWait = r.tokenDue(ctx, obj)
	}
	due.wait = shortestWait(userWait, tokenWait)
	return due
}

// runSteps runs the user check and the token step, as due, within the
// remote timeout. A resource kept from its user by another lets go of its
// token.
func (r *SurgeEndUserReconciler) runSteps(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser, due dueWork) error {
	remoteCtx, cancel := context.WithTimeout(ctx, r.RemoteTimeout)
	defer cancel()
	userErr := due.standingStall
	if due.user {
		userCtx := remoteCtx
		if due.resync {
			userCtx = remote.Resync(remoteCtx)
		}
		userErr = r.reconcileUser(userCtx, api, rep, obj)
	}
	switch {
	case isStall(userErr, surgev1alpha1.ReasonUserClaimed):
		return joinSteps(userErr, r.dropTokenSecret(ctx, obj))
	case tokenStepRuns(userErr, obj.Status.UserID):
		return joinSteps(userErr, r.reconcileToken(remoteCtx, api, rep, obj))
	}
	return userErr
}

// restoreFinalizer puts back a finalizer removed by hand at once, not at the
// next user check, which is the step that adds it otherwise.
func (r *SurgeEndUserReconciler) restoreFinalizer(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) error {
	if controllerutil.ContainsFinalizer(obj, surgev1alpha1.Finalizer) {
		return nil
	}
	return r.patchMetadata(ctx, obj, func(o *surgev1alpha1.SurgeEndUser) {
		controllerutil.AddFinalizer(o, surgev1alpha1.Finalizer)
	})
}

// surgeFor returns the Surge client that serves obj, or the stall that says
// why obj may not reach Surge.
func (r *SurgeEndUserReconciler) surgeFor(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (EndUserRemote, error) {
	api, err := r.Remote.Connect(ctx, obj)
	if err != nil {
		return nil, classifyCredentialsError(err)
	}
	return api, nil
}

// finish is where a reconcile's outcome becomes status: it maps the outcome
// to conditions, settles the create marker under which a new user id was
// learnt, and writes status only when it changed.
func (r *SurgeEndUserReconciler) finish(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser, err error, userChecked bool) (ctrl.Result, error) {
	var outcome outcomeResult
	resync := r.jitteredResync()
	if apierrors.IsConflict(err) {
		// A write lost a race on the Kubernetes side and the newer object is
		// on its way: keep the conditions, but still record what was learnt
		// (a new user id, a token stored) before trying again.
		outcome = outcomeResult{requeueAfter: conflictRetryDelay}
	} else {
		// A resource whose user is gone is not Ready while it waits for a
		// re-create, whatever it was before.
		wasReady := isReady(rep.Stored()) && obj.Status.UserID != ""
		outcome = summarize(err, fmt.Sprintf("End user %s matches the spec", obj.Status.UserID), resync, wasReady)
		if token := obj.Status.Token; token != nil && outcome.final && outcome.requeueAfter > 0 {
			outcome.requeueAfter = shortestWait(outcome.requeueAfter, max(token.RenewAt.Sub(r.Clock.Now()), time.Second))
		}
		outcome.apply(&obj.Status, obj.Generation)
		if outcome.final {
			setOrRemove(&obj.Status.Conditions, surgev1alpha1.ConditionSynced,
				syncedCondition(err, obj.Spec.Allows(surgev1alpha1.ManagementUpdate), obj.Status.UserID), obj.Generation)
		}
		apimeta.RemoveStatusCondition(&obj.Status.Conditions, surgev1alpha1.ConditionPaused)
		if err != nil && !outcome.quiet {
			rep.Eventf(corev1.EventTypeWarning, surgev1alpha1.EventFailed, "Reconcile", "%s", outcome.ready.Message)
		}
	}
	if writeErr := rep.Write(ctx); writeErr != nil {
		return ctrl.Result{}, writeErr
	}
	if outcome.final && userChecked {
		now := r.Clock.Now()
		dueAt := r.checks.record(obj, now.Add(resync), userStallOf(err))
		if outcome.requeueAfter > 0 {
			outcome.requeueAfter = shortestWait(outcome.requeueAfter, max(dueAt.Sub(now), time.Second))
		}
	}
	return outcome.result()
}

// announceStart sets Reconciling on a resource that has no Ready condition
// yet, before its first calls to Surge.
func (r *SurgeEndUserReconciler) announceStart(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) error {
	if apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady) != nil {
		return nil
	}
	startingOutcome().apply(&obj.Status, obj.Generation)
	return rep.Write(ctx)
}

// endUserReport is what one reconcile tells of a SurgeEndUser: status and
// events are stored through it alone.
type endUserReport = report.Report[surgev1alpha1.SurgeEndUserStatus, *surgev1alpha1.SurgeEndUser]

func (r *SurgeEndUserReconciler) newReport(obj *surgev1alpha1.SurgeEndUser) *endUserReport {
	return report.New[surgev1alpha1.SurgeEndUserStatus](report.Writer{Client: r.Client, Recorder: r.Recorder}, obj)
}

// reconcilePaused makes no call to Surge, deletion included, and says so in
// status. The next check after the pause ends goes to Surge.
func (r *SurgeEndUserReconciler) reconcilePaused(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (ctrl.Result, error) {
	r.checks.forget(keyOf(obj))
	apimeta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{
		Type:               surgev1alpha1.ConditionPaused,
		Status:             metav1.ConditionTrue,
		Reason:             surgev1alpha1.ReasonPaused,
		Message:            "The annotation " + surgev1alpha1.AnnotationPaused + " is \"true\": no calls to Surge until it is removed",
		ObservedGeneration: obj.Generation,
	})
	return ctrl.Result{}, rep.Write(ctx)
}

// jitteredResync spreads resyncs over the last tenth of the interval, so
// that resources created together are not checked in the same second forever.
func (r *SurgeEndUserReconciler) jitteredResync() time.Duration {
	spread := int64(r.ResyncInterval / 10)
	if spread <= 0 {
		return r.ResyncInterval
	}
	return r.ResyncInterval - time.Duration(rand.Int64N(spread))
}

// firstCheckAfterStart spreads the first checks of settled resources after a
// start over one resync interval, from the settle time on: an update the
// previous process sent and Surge commits late has landed by then, so the
// check sees it and repairs it.
func (r *SurgeEndUserReconciler) firstCheckAfterStart() time.Duration {
	return r.SettleTime + time.Duration(rand.Int64N(int64(max(r.ResyncInterval, 1))))
}

// patchMetadata changes the resource's metadata with an optimistic lock, so
// that finalizers and annotations written by others are never lost.
func (r *SurgeEndUserReconciler) patchMetadata(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, mutate func(*surgev1alpha1.SurgeEndUser)) error {
	before := obj.DeepCopy()
	mutate(obj)
	if equality.Semantic.DeepEqual(before.ObjectMeta, obj.ObjectMeta) {
		return nil
	}
	status := obj.Status
	err := r.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	// The patch answer carries the stored status, which may lag behind what
	// this reconcile has learnt so far.
	obj.Status = status
	return err
}

// shortestWait is the earliest of the positive waits.
func shortestWait(waits ...time.Duration) time.Duration {
	var shortest time.Duration
	for _, wait := range waits {
		if wait > 0 && (shortest == 0 || wait < shortest) {
			shortest = wait
		}
	}
	return shortest
}

func isReady(status surgev1alpha1.SurgeEndUserStatus) bool {
	return apimeta.IsStatusConditionTrue(status.Conditions, surgev1alpha1.ConditionReady)
}

// SetupWithManager registers the reconciler with the manager.
func (r *SurgeEndUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Brake != nil {
		// Served from the start, so that "nothing held" is a sample too.
		metrics.DeletionsHeld.WithLabelValues(metrics.ScopeOperatorKey).Set(0)
	}
	r.checks = newCheckTracker(r.firstCheckAfterStart)
	r.intents = intent.NewLedger(r.SettleTime)
	r.unstoredTokens = newUnstoredTokens()
	if err := registerIndexes(mgr); err != nil {
		return err
	}
	projectChange := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))
	b := ctrl.NewControllerManagedBy(mgr).
		For(&surgev1alpha1.SurgeEndUser{}, builder.WithPredicates(
			predicate.Or(meaningfulChange(), r.joinedShare()), predicate.NewPredicateFuncs(r.reconciles))).
		Owns(&corev1.Secret{}, builder.WithPredicates(tokenSecretChange())).
		// An annotation of a project releases its held deletions.
		Watches(&surgev1alpha1.SurgeProject{}, handler.EnqueueRequestsFromMapFunc(r.endUsersOfProject), projectChange)
	if !r.IgnoreClusterProjects {
		b = b.Watches(&surgev1alpha1.ClusterSurgeProject{}, handler.EnqueueRequestsFromMapFunc(r.endUsersOfProject), projectChange).
			Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.endUsersOfNamespace),
				builder.WithPredicates(predicate.LabelChangedPredicate{}))
	}
	return b.WithOptions(controller.Options{
		MaxConcurrentReconciles: r.MaxConcurrentReconciles,
		RateLimiter:             newRateLimiter(),
	}).
		Named("surgeenduser").
		Complete(r)
}
