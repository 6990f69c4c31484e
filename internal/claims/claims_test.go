package claims

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestHolder(t *testing.T) {
	older := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	newer := older.Add(time.Hour)
	claim := func(uid string, created time.Time, hold Hold) Claimant {
		return Claimant{Name: types.NamespacedName{Namespace: "ns", Name: uid}, UID: types.UID(uid), Created: created, Hold: hold}
	}
	for _, tc := range []struct {
		name   string
		me     Claimant
		others []Claimant
		want   string
	}{
		{"nobody else claims the user", claim("me", newer, AsksOnly), nil, ""},
		{"the holder keeps it from a newcomer", claim("me", older, AsksOnly), []Claimant{claim("ada", newer, Manages)}, "ada"},
		{"a holder is not displaced by an older asker", claim("me", newer, Manages), []Claimant{claim("old", older, AsksOnly)}, ""},
		{"of two asking, the older goes first", claim("me", newer, AsksOnly), []Claimant{claim("old", older, AsksOnly)}, "old"},
		{"of two holding, the older keeps it", claim("me", newer, Manages), []Claimant{claim("old", older, Manages)}, "old"},
		{"the older of two holders keeps it", claim("me", older, Manages), []Claimant{claim("new", newer, Manages)}, ""},
		{"the same age is settled by uid", claim("b", older, AsksOnly), []Claimant{claim("a", older, AsksOnly)}, "a"},
		{"the resource itself does not count", claim("me", newer, AsksOnly), []Claimant{claim("me", older, Manages)}, ""},
		{"the first in order is named", claim("me", newer, AsksOnly), []Claimant{claim("asker", older, AsksOnly), claim("holder", newer, Manages)}, "holder"},
		{"the resource its tags name keeps it from an older asker", claim("me", newer, TaggedIdentity), []Claimant{claim("squatter", older, AsksOnly)}, ""},
		{"an older asker does not take it from the resource its tags name", claim("squatter", older, AsksOnly), []Claimant{claim("victim", newer, TaggedIdentity)}, "victim"},
		{"the manager keeps it from the resource its stale tags name", claim("me", newer, TaggedIdentity), []Claimant{claim("manager", newer.Add(time.Hour), Manages)}, "manager"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holder, claimed := Holder(tc.me, tc.others)
			got := ""
			if claimed {
				got = string(holder.UID)
			}
			if got != tc.want {
				t.Errorf("claimHolder = %q, want %q", got, tc.want)
			}
		})
	}
}
