package surge

import "errors"

// The retry budget, in the spirit of the AWS SDKs' retry quota: retries
// spend from a pool that successes refill, so that when Surge is down the
// client stops multiplying its load by its retries, and when Surge is
// healthy an occasional failure is still retried.
const (
	retryBudgetCapacity = 500
	// A retry after a failed answer costs retryCost; after no answer at
	// all, which may have cost Surge a full timeout, timeoutRetryCost.
	retryCost        = 5
	timeoutRetryCost = 10
	// successRefill is what a success on the first attempt returns; a
	// retry that succeeds returns its whole cost.
	successRefill = 1
)

// retryBudget is pure; the caller serialises calls.
type retryBudget struct {
	available int
}

func newRetryBudget() retryBudget {
	return retryBudget{available: retryBudgetCapacity}
}

// withdraw takes the cost of one retry and reports whether the budget
// allowed it; an empty budget means no retry.
func (b *retryBudget) withdraw(cost int) bool {
	if cost > b.available {
		return false
	}
	b.available -= cost
	return true
}

// succeeded refills the budget after a success; spent is what the retries
// of the successful request cost.
func (b *retryBudget) succeeded(spent int) {
	b.available = min(b.available+max(spent, successRefill), retryBudgetCapacity)
}

// retryCostOf is what retrying after err costs.
func retryCostOf(err error) int {
	if _, noAnswer := errors.AsType[*transportError](err); noAnswer {
		return timeoutRetryCost
	}
	return retryCost
}
