package surge

import (
	"errors"
	"testing"
)

func TestRetryBudget(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(b *retryBudget) bool
		want bool
	}{
		{"a full budget allows a retry", func(b *retryBudget) bool { return b.withdraw(retryCost) }, true},
		{"an empty budget allows none", func(b *retryBudget) bool {
			for b.withdraw(retryCost) {
			}
			return b.withdraw(retryCost)
		}, false},
		{"a budget spent on failures allows as many retries as it held", func(b *retryBudget) bool {
			retries := 0
			for b.withdraw(retryCost) {
				retries++
			}
			return retries == retryBudgetCapacity/retryCost
		}, true},
		{"successes refill it", func(b *retryBudget) bool {
			for b.withdraw(retryCost) {
			}
			for range retryCost {
				b.succeeded(0)
			}
			return b.withdraw(retryCost)
		}, true},
		{"a retry that succeeds gives its cost back", func(b *retryBudget) bool {
			for b.withdraw(retryCost) {
			}
			b.succeeded(retryCost)
			return b.withdraw(retryCost)
		}, true},
		{"fewer successes than a retry costs do not refill it enough", func(b *retryBudget) bool {
			for b.withdraw(retryCost) {
			}
			for range retryCost - 1 {
				b.succeeded(0)
			}
			return b.withdraw(retryCost)
		}, false},
		{"it never holds more than its capacity", func(b *retryBudget) bool {
			for range 1000 {
				b.succeeded(0)
			}
			return b.available == retryBudgetCapacity
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newRetryBudget()
			if got := tt.run(&b); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRetryCost(t *testing.T) {
	if got := retryCostOf(&transportError{operation: "get_user", err: errors.New("connection reset")}); got != timeoutRetryCost {
		t.Errorf("no answer costs %d, want %d", got, timeoutRetryCost)
	}
	if got := retryCostOf(&Error{StatusCode: 503}); got != retryCost {
		t.Errorf("a 503 costs %d, want %d", got, retryCost)
	}
}
