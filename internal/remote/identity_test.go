package remote

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	indexTestKey     = "sk_demo_index_test"
	indexTestAccount = "acct_01j9a43avnfqzbjfch6pygv1td"
)

// indexWorld is an emulator holding tagged users u0…u(n-1) of namespace
// "ns", and an identity index started against it.
type indexWorld struct {
	t     *testing.T
	emu   *emulator.Server
	api   *surge.Client
	index *identityIndex
	ids   map[string]string
}

func newIndexWorld(t *testing.T, users, budget int) *indexWorld {
	t.Helper()
	emu := emulator.New(emulator.Options{APIKey: indexTestKey, Accounts: []string{indexTestAccount}, PageSize: 5})
	server := httptest.NewServer(emu)
	t.Cleanup(server.Close)
	client, err := surge.New(server.URL, indexTestKey)
	if err != nil {
		t.Fatal(err)
	}
	w := &indexWorld{t: t, emu: emu, api: client, ids: map[string]string{}}
	for i := range users {
		w.put(fmt.Sprintf("u%d", i))
	}
	w.index = newIdentityIndex(clock.RealClock{}, budget)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = w.index.Start(ctx) }()
	for {
		w.index.mu.Lock()
		started := w.index.ctx != nil
		w.index.mu.Unlock()
		if started {
			return w
		}
		time.Sleep(time.Millisecond)
	}
}

func (w *indexWorld) put(name string) {
	user := w.emu.PutUser(indexTestAccount, emulator.User{FirstName: name, Metadata: map[string]string{
		surgev1alpha1.MetadataNamespace: "ns", surgev1alpha1.MetadataName: name, surgev1alpha1.MetadataUID: "uid-" + name,
	}})
	w.ids[name] = user.ID
}

// indexTestScope is the account as the project's key sees it.
var indexTestScope = accountScope{scope: "SurgeProject ns/surge", accountID: indexTestAccount}

func (w *indexWorld) lookup(name string, since time.Time) Identity {
	w.t.Helper()
	answer, err := w.index.lookup(context.Background(), w.api, indexTestScope, types.NamespacedName{Namespace: "ns", Name: name}, since, 5*time.Second)
	if err != nil {
		w.t.Fatalf("lookup of %s: %v", name, err)
	}
	return answer
}

func (w *indexWorld) used() int {
	w.index.mu.Lock()
	defer w.index.mu.Unlock()
	return w.index.used
}

func TestTheIdentityIndexPastItsBudgetKeepsWhatIsWanted(t *testing.T) {
	perEntry := entryCost(types.NamespacedName{Namespace: "ns", Name: "u10"}, "usr_01jrzhe8d9enptypyx360pcmxu")
	w := newIndexWorld(t, 20, 4*perEntry)

	answer := w.lookup("u17", time.Time{})
	if !answer.Complete || len(answer.UserIDs) != 1 || answer.UserIDs[0] != w.ids["u17"] {
		t.Fatalf("lookup of u17, past the budget = %+v, want complete with %s", answer, w.ids["u17"])
	}
	if used := w.used(); used > 5*perEntry {
		t.Errorf("the index holds %d bytes, want at most the budget and the wanted entry (%d)", used, 5*perEntry)
	}
	// u12 was not wanted during the first pass, which had no room for it.
	answer = w.lookup("u12", time.Time{})
	if !answer.Complete || len(answer.UserIDs) != 1 || answer.UserIDs[0] != w.ids["u12"] {
		t.Errorf("lookup of u12 after the first pass = %+v, want complete with %s", answer, w.ids["u12"])
	}

	w.index.ForgetScope(indexTestScope.scope)
	if used := w.used(); used != 0 {
		t.Errorf("the index holds %d bytes after its scope was forgotten, want 0", used)
	}
}

func TestTheIdentityIndexSkipsTagsNoResourceCanHave(t *testing.T) {
	w := newIndexWorld(t, 1, DefaultIdentityBudget)
	long := strings.Repeat("x", 300)
	w.put(long)

	if answer := w.lookup("u0", time.Time{}); !answer.Complete || len(answer.UserIDs) != 1 {
		t.Fatalf("lookup of u0 = %+v, want its user", answer)
	}
	if answer := w.lookup(long, time.Time{}); len(answer.UserIDs) != 0 {
		t.Errorf("a name of %d characters was indexed: %+v", len(long), answer)
	}
	if used, want := w.used(), entryCost(types.NamespacedName{Namespace: "ns", Name: "u0"}, w.ids["u0"]); used != want {
		t.Errorf("the index holds %d bytes, want %d (u0 only)", used, want)
	}
}

// TestALookupForALaterListingDoesNotRelistAtOnce: a create sent just now
// needs a listing that starts later; a lookup meanwhile lists the account
// once, which may find the user early, and then waits.
func TestALookupForALaterListingDoesNotRelistAtOnce(t *testing.T) {
	w := newIndexWorld(t, 12, DefaultIdentityBudget)

	answer := w.lookup("u3", time.Now().Add(time.Hour))
	if answer.Complete || len(answer.UserIDs) != 1 {
		t.Errorf("lookup = %+v, want u3's user found but not a complete answer", answer)
	}
	w.lookup("u3", time.Now().Add(time.Hour))
	if pages := w.emu.CountRequests(http.MethodGet, "/accounts/"); pages != 3 {
		t.Errorf("%d list requests, want one listing of the account's 3 pages", pages)
	}
}

// Round-4 finding (a): Surge's cursors may be offsets. Another user deleted
// on a page a listing has passed shifts the rest of the list back, and the
// listing skips the user that moves onto that page: one pass over the pages
// is no proof that a user is absent.
func TestALookupIsNotConclusiveFromAPassThatADeletionOverlapped(t *testing.T) {
	emu := emulator.New(emulator.Options{APIKey: indexTestKey, Accounts: []string{indexTestAccount}, PageSize: 5})
	emu.SetOffsetCursors(true)
	w := &indexWorld{t: t, emu: emu, ids: map[string]string{}}
	for i := range 12 {
		w.put(fmt.Sprintf("u%d", i))
	}
	// u5 is the first user of the second page; u1, on the first, is
	// deleted by someone else once the first page is read.
	deleted := false
	server := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		emu.ServeHTTP(rw, r)
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/accounts/") && r.URL.Query().Get("after") == "" && !deleted {
			deleted = emu.RemoveUser(w.ids["u1"])
		}
	}))
	t.Cleanup(server.Close)
	client, err := surge.New(server.URL, indexTestKey)
	if err != nil {
		t.Fatal(err)
	}
	w.api = client
	w.index = newIdentityIndex(clock.RealClock{}, DefaultIdentityBudget)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w.index.mu.Lock()
	w.index.ctx = ctx
	w.index.mu.Unlock()

	answer := w.lookup("u5", time.Now())
	if !deleted {
		t.Fatal("u1 was not deleted during the listing")
	}
	if answer.Complete && len(answer.UserIDs) == 0 {
		t.Fatalf("lookup of u5 = %+v: absent, from a pass that skipped it", answer)
	}
	if len(answer.UserIDs) != 1 || answer.UserIDs[0] != w.ids["u5"] {
		t.Errorf("lookup of u5 = %+v, want its user %s", answer, w.ids["u5"])
	}
}
