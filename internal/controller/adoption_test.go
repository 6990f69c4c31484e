package controller_test

import (
	"fmt"
	"net/http"
	"testing"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// Round-4 finding (b): resources that adopt users through spec.userID check
// that each is in their account by one shared walk of the account, not a
// walk each (kubectl surge import writes such resources, one per user).
func TestAdoptionsShareTheWalkOfTheAccount(t *testing.T) {
	f := newFixtureWithPageSize(t, 5)
	const existing, adopted = 100, 10
	var ids []string
	for i := range existing {
		user := f.Surge.PutUser(f.Account, emulator.User{FirstName: fmt.Sprintf("Existing%d", i)})
		if i >= existing-adopted {
			// The last users, which a walk reaches last.
			ids = append(ids, user.ID)
		}
	}
	f.Surge.ResetRequests()
	for i, id := range ids {
		f.Create(f.endUser(fmt.Sprintf("adopter-%d", i), func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = id }))
	}
	for i, id := range ids {
		if obj := f.waitForReady(fmt.Sprintf("adopter-%d", i)); obj.Status.UserID != id {
			t.Errorf("adopter-%d adopted %s, want %s", i, obj.Status.UserID, id)
		}
	}
	pages := existing / 5
	listed := f.Surge.CountRequests(http.MethodGet, "/accounts/"+f.Account)
	t.Logf("%d adoptions read %d pages of an account of %d pages", adopted, listed, pages)
	if listed > 4*pages {
		t.Errorf("%d adoptions read %d pages of an account of %d pages, want at most 4 walks of it", adopted, listed, pages)
	}
}
