package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
)

// The README's run command, in its smoke mode: from the checkout alone, the
// samples become Ready and the kubeconfig to use is printed.
func TestSandboxShowsTheSamplesReady(t *testing.T) {
	var out bytes.Buffer
	stateDir := t.TempDir()
	err := run(context.Background(), options{
		root:       filepath.Join("..", ".."),
		stateDir:   stateDir,
		smoke:      true,
		readyAfter: time.Minute,
		out:        &out,
	})
	if err != nil {
		t.Fatalf("sandbox failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"is Ready: end user usr_",
		"export KUBECONFIG=" + filepath.Join(stateDir, "kubeconfig"),
		"with API key sk_demo_sandbox and account acct_",
		"/_emulator/users",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sandbox output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSandboxCollectsTheSecretsOfDeletedResources: with no garbage
// collector in the local control plane, the sandbox deletes the token
// Secret of a SurgeEndUser that is gone, and only that one.
func TestSandboxCollectsTheSecretsOfDeletedResources(t *testing.T) {
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	k8s, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	secretOf := func(name string) *corev1.Secret {
		owner := &surgev1alpha1.SurgeEndUser{
			ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: name},
			Spec:       surgev1alpha1.SurgeEndUserSpec{AccountID: sandboxAccount, FirstName: "Ada"},
		}
		if err := k8s.Create(ctx, owner); err != nil {
			t.Fatal(err)
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Namespace: metav1.NamespaceDefault, Name: name + "-token",
			Labels: map[string]string{surgev1alpha1.LabelManagedBy: surgev1alpha1.LabelManagedByValue},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: surgev1alpha1.GroupVersion.String(), Kind: "SurgeEndUser", Name: owner.Name, UID: owner.UID,
			}},
		}}
		if err := k8s.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	kept, orphaned := secretOf("ada"), secretOf("grace")
	if err := k8s.Delete(ctx, &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "grace"}}); err != nil {
		t.Fatal(err)
	}
	if err := collectOnce(ctx, k8s); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(orphaned), &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the token Secret of a deleted SurgeEndUser: got %v, want it collected", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(kept), &corev1.Secret{}); err != nil {
		t.Errorf("the token Secret of a live SurgeEndUser: %v, want it kept", err)
	}
}
