// Package surgetest runs the Surge end-user operator inside a Go test, for
// teams whose own controllers create SurgeEndUsers: the operator's CRDs to
// install into envtest, an emulated Surge API over real HTTP with fault
// injection, and the operator's manager, so that the test's SurgeEndUsers
// become Ready with their users in the emulator, as in a real cluster.
//
// The operator's own test suites run on this package, and its emulator is
// the one they use.
//
// A complete envtest suite, with the kube-apiserver and etcd binaries named
// by KUBEBUILDER_ASSETS as usual:
//
//	package onboarding_test
//
//	import (
//		"context"
//		"testing"
//		"time"
//
//		apimeta "k8s.io/apimachinery/pkg/api/meta"
//		metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
//		"k8s.io/apimachinery/pkg/runtime"
//		"sigs.k8s.io/controller-runtime/pkg/client"
//		"sigs.k8s.io/controller-runtime/pkg/envtest"
//
//		surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
//		"github.com/surge-operator/surge-operator/pkg/surgetest"
//	)
//
//	func TestEndUserBecomesReady(t *testing.T) {
//		env := &envtest.Environment{CRDs: surgetest.CRDs()}
//		cfg, err := env.Start()
//		if err != nil {
//			t.Fatal(err)
//		}
//		t.Cleanup(func() { _ = env.Stop() })
//
//		emu := surgetest.NewEmulator(t)
//		emu.AddAccount("acct_01j9a43avnfqzbjfch6pygv1td")
//		surgetest.StartOperator(t, cfg, emu)
//
//		scheme := runtime.NewScheme()
//		if err := surgev1alpha1.AddToScheme(scheme); err != nil {
//			t.Fatal(err)
//		}
//		k8s, err := client.New(cfg, client.Options{Scheme: scheme})
//		if err != nil {
//			t.Fatal(err)
//		}
//		ctx := context.Background()
//		ada := &surgev1alpha1.SurgeEndUser{
//			ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: "default"},
//			Spec:       surgev1alpha1.SurgeEndUserSpec{AccountID: "acct_01j9a43avnfqzbjfch6pygv1td", FirstName: "Ada"},
//		}
//		if err := k8s.Create(ctx, ada); err != nil {
//			t.Fatal(err)
//		}
//		deadline := time.Now().Add(30 * time.Second)
//		for !apimeta.IsStatusConditionTrue(ada.Status.Conditions, "Ready") {
//			if time.Now().After(deadline) {
//				t.Fatalf("not Ready: %+v", ada.Status)
//			}
//			time.Sleep(100 * time.Millisecond)
//			_ = k8s.Get(ctx, client.ObjectKeyFromObject(ada), ada)
//		}
//		if users := emu.Users("acct_01j9a43avnfqzbjfch6pygv1td"); len(users) != 1 || users[0].FirstName != "Ada" {
//			t.Fatalf("users in Surge: %+v", users)
//		}
//	}
//
// Deleting the SurgeEndUser deletes its user from the emulator before the
// object goes. examples/onboarding in the operator's repository holds a
// whole controller with such a suite.
//
// One envtest API server can serve many tests, each with its own Emulator
// and operator: give each operator its own namespaces (WithNamespaces), or
// operators watching the same namespace will each reconcile the others'
// resources against their own Emulator.
//
// Faults make the emulator answer as an unreliable Surge would: statuses
// with Surge's error bodies, Retry-After, latency, and answers lost after the
// change was made. The request log shows what the operator sent.
package surgetest
