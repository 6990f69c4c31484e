package surgetest_test

import (
	"context"
	"fmt"
	"net/http"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

func ExampleCRDs() {
	for _, crd := range surgetest.CRDs() {
		fmt.Println(crd.Spec.Names.Kind)
	}
	// Output:
	// ClusterSurgeProject
	// SurgeEndUser
	// SurgeProject
}

// The emulator speaks Surge's HTTP API, so any client can be pointed at it.
func ExampleNewEmulator() {
	inTest(func(t testing.TB) {
		emu := surgetest.NewEmulator(t)
		emu.AddAccount("acct_01j9a43avnfqzbjfch6pygv1td")

		req, _ := http.NewRequest(http.MethodPost, emu.URL()+"/accounts/acct_01j9a43avnfqzbjfch6pygv1td/users",
			strings.NewReader(`{"first_name": "Ada", "last_name": "Lovelace"}`))
		req.Header.Set("Authorization", "Bearer "+emu.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		fmt.Println(resp.Status)

		for _, user := range emu.Users("acct_01j9a43avnfqzbjfch6pygv1td") {
			fmt.Println(user.FirstName, user.LastName)
		}
	})
	// Output:
	// 201 Created
	// Ada Lovelace
}

// A fault answers in Surge's place; Count limits it to that many requests.
func ExampleEmulator_InjectFault() {
	inTest(func(t testing.TB) {
		emu := surgetest.NewEmulator(t)
		emu.InjectFault(surgetest.Fault{
			Method:     http.MethodGet,
			PathPrefix: "/users/",
			Status:     http.StatusTooManyRequests,
			RetryAfter: 2 * time.Second,
			Count:      1,
		})

		for range 2 {
			req, _ := http.NewRequest(http.MethodGet, emu.URL()+"/users/usr_01jrzhe8d9enptypyx360pcmxu", nil)
			req.Header.Set("Authorization", "Bearer "+emu.APIKey())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			fmt.Printf("%s, Retry-After %q\n", resp.Status, resp.Header.Get("Retry-After"))
		}
		fmt.Println(emu.CountRequests(http.MethodGet, "/users/"), "requests")
	})
	// Output:
	// 429 Too Many Requests, Retry-After "2"
	// 404 Not Found, Retry-After ""
	// 2 requests
}

// The operator makes a SurgeEndUser's user in the emulator, and deletes it
// with the resource.
func ExampleStartOperator() {
	inTest(func(t testing.TB) {
		env := &envtest.Environment{CRDs: surgetest.CRDs()}
		cfg, err := env.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Stop() })

		emu := surgetest.NewEmulator(t)
		emu.AddAccount("acct_01j9a43avnfqzbjfch6pygv1td")
		surgetest.StartOperator(t, cfg, emu)

		scheme := runtime.NewScheme()
		if err := surgev1alpha1.AddToScheme(scheme); err != nil {
			t.Fatal(err)
		}
		k8s, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		ada := &surgev1alpha1.SurgeEndUser{
			ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: "default"},
			Spec:       surgev1alpha1.SurgeEndUserSpec{AccountID: "acct_01j9a43avnfqzbjfch6pygv1td", FirstName: "Ada"},
		}
		if err := k8s.Create(ctx, ada); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "Ready", func() bool {
			return k8s.Get(ctx, client.ObjectKeyFromObject(ada), ada) == nil &&
				apimeta.IsStatusConditionTrue(ada.Status.Conditions, "Ready")
		})
		user, _ := emu.User(ada.Status.UserID)
		fmt.Println("in Surge:", user.FirstName)

		if err := k8s.Delete(ctx, ada); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "deleted", func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(ada), ada))
		})
		fmt.Println("users left:", len(emu.Users("acct_01j9a43avnfqzbjfch6pygv1td")))
	})
	// Output:
	// in Surge: Ada
	// users left: 0
}

// inTest runs body as a test function, for examples, which get no
// *testing.T: a failure panics, and the cleanups run when body returns.
func inTest(body func(t testing.TB)) {
	t := &exampleTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(t)
	}()
	<-done
	for _, cleanup := range slices.Backward(t.cleanups) {
		cleanup()
	}
	if t.failure != "" {
		panic(t.failure)
	}
}

type exampleTB struct {
	testing.TB
	cleanups []func()
	failure  string
}

func (t *exampleTB) Helper()                        {}
func (t *exampleTB) Cleanup(f func())               { t.cleanups = append(t.cleanups, f) }
func (t *exampleTB) Errorf(format string, a ...any) { t.failure += fmt.Sprintf(format, a...) + "\n" }
func (t *exampleTB) Fatal(a ...any)                 { t.Fatalf("%s", fmt.Sprint(a...)) }
func (t *exampleTB) Fatalf(format string, a ...any) {
	t.Errorf(format, a...)
	goruntime.Goexit()
}

func waitFor(t testing.TB, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
