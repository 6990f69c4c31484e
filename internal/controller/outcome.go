package controller

import (
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// stalledError is an outcome only a person can fix: a rejected key, an
// unknown account, a request Surge refuses. It is retried at the resync
// interval, and at once when the spec changes.
type stalledError struct {
	reason  string
	message string
}

func (e *stalledError) Error() string { return e.message }

func stalled(reason, format string, args ...any) error {
	return &stalledError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// isStall says whether err is a stall for this reason.
func isStall(err error, reason string) bool {
	stall, ok := errors.AsType[*stalledError](err)
	return ok && stall.reason == reason
}

// transientError is an outcome that fixes itself: Surge is unavailable or
// rate limiting. It is retried with exponential backoff.
type transientError struct {
	reason  string
	message string
	err     error
	// retryAfter, when set, is the wait Surge asked for, which replaces the
	// backoff.
	retryAfter time.Duration
}

func (e *transientError) Error() string { return e.message }
func (e *transientError) Unwrap() error { return e.err }

// rateLimitedError is no failure: Surge's rate limit for the API key is
// spent, and the client handed the wait back instead of holding a worker.
// The resource waits its turn, after the wait the client named, without
// exponential backoff: a busy Surge must not leave it waiting minutes
// after Surge has recovered.
type rateLimitedError struct {
	wait time.Duration
	err  error
}

func (e *rateLimitedError) Error() string { return e.err.Error() }
func (e *rateLimitedError) Unwrap() error { return e.err }

// rateLimitedMessage stays the same at every wait, so that a resource
// held back again and again is not written again and again.
const rateLimitedMessage = "Surge's rate limit for the API key is spent: waiting for a turn"

// minRateLimitedWait is the least a held-back resource waits, for a 429
// that named no wait.
const minRateLimitedWait = time.Second

// waitingError is no failure either: the resource waits for something the
// operator is doing on its behalf, for at most wait before it looks again.
type waitingError struct {
	reason  string
	message string
	wait    time.Duration
}

func (e *waitingError) Error() string { return e.message }

// degradedError is a failure that does not yet hurt the user: renewing a
// token failed while the stored one is still valid. Ready stays True; the
// renewal is retried with backoff.
type degradedError struct {
	message string
	err     error
}

func (e *degradedError) Error() string { return e.message }
func (e *degradedError) Unwrap() error { return e.err }

// classifyCredentialsError turns a refusal of the credentials, which only
// a person can lift, into a stall; other errors stay as they are.
func classifyCredentialsError(err error) error {
	if refusal, refused := errors.AsType[*credentials.Refusal](err); refused {
		return stalled(refusal.Reason, "%s", refusal.Message)
	}
	return err
}

// classifyRemoteError turns a failed call to Surge into an outcome: a
// stall with a message saying what to fix, or a transient error.
func classifyRemoteError(action string, err error, spec *surgev1alpha1.SurgeEndUserSpec) error {
	failure, ok := errors.AsType[*remote.Error](err)
	if !ok {
		failure = &remote.Error{Kind: remote.Unavailable}
	}
	switch failure.Kind {
	case remote.RateLimited:
		return &rateLimitedError{wait: failure.Wait, err: err}
	case remote.KeyRejected:
		return stalled(surgev1alpha1.ReasonAPIKeyRejected,
			"Surge rejected the API key while trying to %s (%s): check the key (in the Secret of the project spec.projectRef names, or the operator's SURGE_API_KEY) and that its Surge project is active",
			action, failure.Status)
	case remote.AccountNotFound:
		return stalled(surgev1alpha1.ReasonAccountNotFound,
			"Surge has no account %s reachable with this API key while trying to %s: check spec.accountID",
			spec.AccountID, action)
	case remote.Refused:
		return stalled(surgev1alpha1.ReasonRequestRejected,
			"Surge refused to %s: %s: fix the spec", action, err.Error())
	}
	transient := &transientError{
		reason:  surgev1alpha1.ReasonSurgeUnavailable,
		message: fmt.Sprintf("failed to %s, will retry: %v", action, err),
		err:     err,
	}
	if failure.Wait > 0 {
		transient.retryAfter = failure.Wait
		transient.message = fmt.Sprintf("failed to %s, will retry in %s as Surge asked: %v", action, failure.Wait.Round(time.Second), err)
	}
	return transient
}

// stepsError is the outcome of a reconcile that ran the token step after
// the user step: the user step's error, if any, then the token step's.
type stepsError struct {
	user  error
	token error
}

func (e *stepsError) Error() string {
	switch {
	case e.user == nil:
		return e.token.Error()
	case e.token == nil:
		return e.user.Error()
	}
	return e.user.Error() + "; " + e.token.Error()
}

func (e *stepsError) Unwrap() []error { return []error{e.user, e.token} }

// joinSteps is the outcome of a user step and the token step that followed.
func joinSteps(user, token error) error {
	if user == nil && token == nil {
		return nil
	}
	return &stepsError{user: user, token: token}
}

// tokenStepRuns says whether the token step runs after a user step that
// ended with userErr. A stall of the user check whose cause has nothing to
// do with tokens (Surge refusing the spec) must not let a valid token
// expire, as long as the user is known to exist; any other failure of the
// user step leaves the user in doubt, or the key rejected, and a mint would
// fail too.
func tokenStepRuns(userErr error, userID string) bool {
	if userErr == nil || errors.As(userErr, new(*driftError)) {
		return true
	}
	var stall *stalledError
	return userID != "" && errors.As(userErr, &stall) && stall.reason == surgev1alpha1.ReasonRequestRejected
}

// userStallOf is the stall of the user step within err, the outcome of a
// reconcile; nil when the user step did not stall.
func userStallOf(err error) error {
	var steps *stepsError
	if errors.As(err, &steps) {
		err = steps.user
	}
	var stall *stalledError
	if errors.As(err, &stall) {
		return stall
	}
	return nil
}

// classifySecretWriteError turns a failed write of a token Secret into an
// outcome. Kubernetes refusing the Secret as invalid (its own validation, or
// an admission policy) is a stall: the same write would be refused again.
// Its message names the rule broken and never the Secret's data.
func classifySecretWriteError(action, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsInvalid(err):
		return stalled(surgev1alpha1.ReasonSecretRejected,
			"Kubernetes refused to %s token Secret %s: %v: fix spec.tokenSecret, or the policy that refuses it", action, name, err)
	default:
		return fmt.Errorf("%s token Secret %s: %w", action, name, err)
	}
}

// outcomeResult is what the single status writer needs to know of a
// reconcile: the conditions to set and when to look again.
type outcomeResult struct {
	ready       metav1.Condition
	reconciling *metav1.Condition
	stalled     *metav1.Condition
	// final means the outcome holds for this generation (success or stall):
	// only then is observedGeneration stamped.
	final bool
	// keepConditions leaves the conditions as they are.
	keepConditions bool
	// quiet marks a wait, for Surge's rate limit or for a listing, which
	// is no failure and warrants no warning.
	quiet        bool
	requeueAfter time.Duration
	// periodic marks a requeue that only checks again a settled outcome:
	// it goes behind new and changed resources in the queue.
	periodic bool
	// retryErr, when set, is returned to controller-runtime for exponential
	// backoff.
	retryErr error
}

// driftError is the outcome of a user check that found the user differing
// from the spec, on a resource whose managementPolicies do not allow Update:
// the user exists and was observed, and the difference is only reported.
type driftError struct {
	userID string
	fields []string
}

func (e *driftError) Error() string {
	return fmt.Sprintf("End user %s differs from the spec in %s, and managementPolicies do not allow Update",
		e.userID, strings.Join(e.fields, ", "))
}

// syncedCondition is the Synced condition after a final outcome err: on a
// resource whose managementPolicies do not allow Update, whether its user
// matches the spec; nil (no condition) where the operator repairs drift
// itself, or where the user was not observed.
func syncedCondition(err error, allowsUpdate bool, userID string) *metav1.Condition {
	if allowsUpdate || userID == "" {
		return nil
	}
	if drift, drifted := errors.AsType[*driftError](err); drifted {
		return &metav1.Condition{Type: surgev1alpha1.ConditionSynced, Status: metav1.ConditionFalse,
			Reason: surgev1alpha1.ReasonDrifted, Message: drift.Error()}
	}
	if userStallOf(err) != nil {
		return nil
	}
	return &metav1.Condition{Type: surgev1alpha1.ConditionSynced, Status: metav1.ConditionTrue,
		Reason: surgev1alpha1.ReasonObserved, Message: fmt.Sprintf("End user %s matches the spec", userID)}
}

// summarize maps the outcome of a reconcile to conditions and a requeue.
// It is the only place that decides either. wasReady says whether the
// resource was Ready before this reconcile.
func summarize(err error, successMessage string, resync time.Duration, wasReady bool) outcomeResult {
	var steps *stepsError
	if errors.As(err, &steps) {
		return summarizeSteps(steps, successMessage, resync, wasReady)
	}
	var stall *stalledError
	var transient *transientError
	var degraded *degradedError
	var limited *rateLimitedError
	var waiting *waitingError
	var drift *driftError
	switch {
	case errors.As(err, &drift):
		return outcomeResult{
			ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionTrue,
				Reason: surgev1alpha1.ReasonObserved, Message: drift.Error()},
			final:        true,
			quiet:        true,
			requeueAfter: resync,
			periodic:     true,
		}
	case err == nil:
		return outcomeResult{
			ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionTrue,
				Reason: surgev1alpha1.ReasonSynced, Message: successMessage},
			final:        true,
			requeueAfter: resync,
			periodic:     true,
		}
	case errors.As(err, &limited) && wasReady:
		// What is in Surge was fine at the last check and nothing says
		// otherwise: a Ready resource stays Ready while it waits.
		return outcomeResult{keepConditions: true, quiet: true, requeueAfter: max(limited.wait, minRateLimitedWait)}
	case errors.As(err, &limited):
		return waitOutcome(surgev1alpha1.ReasonRateLimited, rateLimitedMessage, max(limited.wait, minRateLimitedWait))
	case errors.As(err, &waiting):
		return waitOutcome(waiting.reason, waiting.message, waiting.wait)
	case errors.As(err, &degraded):
		return outcomeResult{
			ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionTrue,
				Reason: surgev1alpha1.ReasonTokenRenewalFailing, Message: successMessage + "; " + degraded.message},
			final:    true,
			retryErr: err,
		}
	case errors.As(err, &stall):
		return outcomeResult{
			ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse,
				Reason: stall.reason, Message: stall.message},
			stalled: &metav1.Condition{Type: surgev1alpha1.ConditionStalled, Status: metav1.ConditionTrue,
				Reason: stall.reason, Message: stall.message},
			final:        true,
			requeueAfter: resync,
			periodic:     true,
		}
	case errors.As(err, &transient):
		outcome := outcomeResult{
			ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse,
				Reason: transient.reason, Message: transient.message},
			reconciling: &metav1.Condition{Type: surgev1alpha1.ConditionReconciling, Status: metav1.ConditionTrue,
				Reason: transient.reason, Message: transient.message},
			retryErr: err,
		}
		if transient.retryAfter > 0 {
			outcome.retryErr, outcome.requeueAfter = nil, transient.retryAfter
		}
		return outcome
	default:
		return outcomeResult{
			ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse,
				Reason: surgev1alpha1.ReasonProgressing, Message: err.Error()},
			reconciling: &metav1.Condition{Type: surgev1alpha1.ConditionReconciling, Status: metav1.ConditionTrue,
				Reason: surgev1alpha1.ReasonProgressing, Message: err.Error()},
			retryErr: err,
		}
	}
}

// waitOutcome is a wait that is no failure: Reconciling, not Ready, no
// warning, and a look again after wait.
func waitOutcome(reason, message string, wait time.Duration) outcomeResult {
	return outcomeResult{
		ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: reason, Message: message},
		reconciling: &metav1.Condition{Type: surgev1alpha1.ConditionReconciling, Status: metav1.ConditionTrue,
			Reason: reason, Message: message},
		quiet:        true,
		requeueAfter: wait,
	}
}

// summarizeSteps maps the outcome of both steps. A stalled user step stays
// the resource's condition whatever the token step did; a token step that
// failed after it is still retried with backoff, unless it stalled too.
func summarizeSteps(steps *stepsError, successMessage string, resync time.Duration, wasReady bool) outcomeResult {
	if steps.user == nil {
		return summarize(steps.token, successMessage, resync, wasReady)
	}
	outcome := summarize(steps.user, successMessage, resync, wasReady)
	if steps.token == nil {
		return outcome
	}
	outcome.ready.Message += "; " + steps.token.Error()
	if outcome.stalled != nil {
		outcome.stalled.Message = outcome.ready.Message
	}
	var tokenStall *stalledError
	if !errors.As(steps.token, &tokenStall) {
		outcome.retryErr = steps.token
		outcome.requeueAfter = 0
	}
	return outcome
}

// startingOutcome is the status of a resource before its first calls to
// Surge, which may take minutes: kstatus reads a resource without conditions
// as Current, so Reconciling says that work is under way.
func startingOutcome() outcomeResult {
	const message = "Bringing the end user in Surge in line with the spec"
	return outcomeResult{
		ready: metav1.Condition{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionUnknown,
			Reason: surgev1alpha1.ReasonProgressing, Message: message},
		reconciling: &metav1.Condition{Type: surgev1alpha1.ConditionReconciling, Status: metav1.ConditionTrue,
			Reason: surgev1alpha1.ReasonProgressing, Message: message},
	}
}

// apply writes the outcome into status: the three conditions and, for a
// final outcome, the observed generation.
func (o outcomeResult) apply(status *surgev1alpha1.SurgeEndUserStatus, generation int64) {
	o.applyTo(&status.Conditions, &status.ObservedGeneration, generation)
}

// applyTo is apply for the status of any kind.
func (o outcomeResult) applyTo(conditions *[]metav1.Condition, observedGeneration *int64, generation int64) {
	if o.keepConditions {
		return
	}
	o.ready.ObservedGeneration = generation
	apimeta.SetStatusCondition(conditions, o.ready)
	setOrRemove(conditions, surgev1alpha1.ConditionReconciling, o.reconciling, generation)
	setOrRemove(conditions, surgev1alpha1.ConditionStalled, o.stalled, generation)
	if o.final {
		*observedGeneration = generation
	}
}

func (o outcomeResult) result() (ctrl.Result, error) {
	if o.retryErr != nil {
		return ctrl.Result{}, o.retryErr
	}
	result := ctrl.Result{RequeueAfter: o.requeueAfter}
	if o.periodic {
		result.Priority = ptr.To(handler.LowPriority)
	}
	return result, nil
}

func setOrRemove(conditions *[]metav1.Condition, conditionType string, condition *metav1.Condition, generation int64) {
	if condition == nil {
		apimeta.RemoveStatusCondition(conditions, conditionType)
		return
	}
	condition.ObservedGeneration = generation
	apimeta.SetStatusCondition(conditions, *condition)
}
