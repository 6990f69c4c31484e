package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operatortest"
	"github.com/surge-operator/surge-operator/internal/remote"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

func withToken(name string, seconds int32, renewBefore time.Duration) func(*surgev1alpha1.SurgeEndUser) {
	return func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.TokenSecret = &surgev1alpha1.TokenSecretSpec{Name: name, DurationSeconds: seconds}
		if renewBefore > 0 {
			o.Spec.TokenSecret.RenewBefore = &metav1.Duration{Duration: renewBefore}
		}
	}
}

func (f *fixture) secret(name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	return secret, k8s.Get(f.Ctx, types.NamespacedName{Namespace: f.Namespace, Name: name}, secret)
}

// waitForToken waits until the Secret holds a token for userID that differs
// from notToken, and returns it with its claims.
func (f *fixture) waitForToken(secretName, userID, notToken string) (string, remote.TokenClaims) {
	f.T.Helper()
	return f.waitForTokenWithin(20*time.Second, secretName, userID, notToken)
}

func (f *fixture) waitForTokenWithin(timeout time.Duration, secretName, userID, notToken string) (string, remote.TokenClaims) {
	f.T.Helper()
	var token string
	var claims remote.TokenClaims
	f.Eventually("token in Secret "+secretName, timeout, func() (bool, string) {
		secret, err := f.secret(secretName)
		if err != nil {
			return false, err.Error()
		}
		token = string(secret.Data["token"])
		if token == "" || token == notToken {
			return false, "no new token yet"
		}
		claims, err = remote.ParseTokenClaims(token)
		if err != nil {
			return false, err.Error()
		}
		return claims.Subject == userID, "token for " + claims.Subject
	})
	return token, claims
}

func (f *fixture) tokenRequests() int {
	return f.Surge.CountRequests(http.MethodPost, "/users/")
}

func TestMintsATokenIntoAnOwnedSecret(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("minted", withToken("minted-token", 60, 0), func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.TokenSecret.Template = &surgev1alpha1.SecretTemplate{
			Labels:      map[string]surgev1alpha1.LabelValue{"app": "inbox"},
			Annotations: map[string]string{"reloader.example.com/match": "true"},
		}
	}))
	obj := f.waitForReady("minted")
	_, claims := f.waitForToken("minted-token", obj.Status.UserID, "")

	if lifetime := time.Until(claims.ExpiresAt); lifetime < 50*time.Second || lifetime > 61*time.Second {
		t.Errorf("token expires in %s, want about 60s", lifetime)
	}
	secret, _ := f.secret("minted-token")
	if secret.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret type %s, want Opaque", secret.Type)
	}
	if got := string(secret.Data["userID"]); got != obj.Status.UserID {
		t.Errorf("Secret userID %q, want %q", got, obj.Status.UserID)
	}
	if got := string(secret.Data["expiresAt"]); got != claims.ExpiresAt.UTC().Format(time.RFC3339) {
		t.Errorf("Secret expiresAt %q, token exp %s", got, claims.ExpiresAt)
	}
	owner := metav1.GetControllerOf(secret)
	if owner == nil || owner.UID != obj.UID || owner.Kind != "SurgeEndUser" {
		t.Errorf("Secret controller %+v, want the SurgeEndUser", owner)
	}
	if secret.Labels["app.kubernetes.io/managed-by"] != "surge-operator" || secret.Labels["app"] != "inbox" ||
		secret.Annotations["reloader.example.com/match"] != "true" {
		t.Errorf("Secret metadata lacks the operator's labels or the template: %v %v", secret.Labels, secret.Annotations)
	}

	obj = f.waitForReady("minted")
	if obj.Status.Token == nil || obj.Status.Token.SecretName != "minted-token" || !obj.Status.Token.ExpiresAt.Time.Equal(claims.ExpiresAt) {
		t.Fatalf("status.token %+v does not describe the token", obj.Status.Token)
	}
	// The default renewal is a third of the lifetime ahead of expiry, brought
	// forward by a little jitter.
	untilRenewal := claims.ExpiresAt.Sub(obj.Status.Token.RenewAt.Time)
	if untilRenewal < 20*time.Second || untilRenewal > 23*time.Second {
		t.Errorf("renewAt is %s before expiry, want a third of 60s plus jitter", untilRenewal)
	}
	if strings.Contains(fmt.Sprint(obj.Status), string(secret.Data["token"])) {
		t.Errorf("token value leaked into status")
	}
}

func TestRenewsTheTokenBeforeItExpires(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("renewed", withToken("renewed-token", 15, 7*time.Second)))
	userID := f.waitForReady("renewed").Status.UserID
	first, firstClaims := f.waitForToken("renewed-token", userID, "")
	// Keys others add to the Secret survive the renewal.
	secret, err := f.secret("renewed-token")
	if err != nil {
		t.Fatal(err)
	}
	metav1.SetMetaDataLabel(&secret.ObjectMeta, "policy.example.com/checked", "true")
	metav1.SetMetaDataAnnotation(&secret.ObjectMeta, "backup.example.com/skip", "true")
	if err := k8s.Update(f.Ctx, secret); err != nil {
		t.Fatal(err)
	}

	second, secondClaims := f.waitForToken("renewed-token", userID, first)
	renewed, err := f.secret("renewed-token")
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Labels["policy.example.com/checked"] != "true" || renewed.Annotations["backup.example.com/skip"] != "true" ||
		renewed.Labels[surgev1alpha1.LabelEndUser] == "" || renewed.Annotations[surgev1alpha1.AnnotationEndUser] != "renewed" || len(renewed.Data) != 3 {
		t.Errorf("after the renewal the Secret has labels %v, annotations %v and %d data keys", renewed.Labels, renewed.Annotations, len(renewed.Data))
	}
	if !time.Now().Before(firstClaims.ExpiresAt) {
		t.Errorf("the first token expired (%s) before it was replaced", firstClaims.ExpiresAt)
	}
	if !secondClaims.ExpiresAt.After(firstClaims.ExpiresAt) || second == first {
		t.Errorf("the renewed token does not last longer: %s then %s", firstClaims.ExpiresAt, secondClaims.ExpiresAt)
	}
}

func TestRestartDoesNotReMintAFreshToken(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("steady", withToken("steady-token", 900, 0)))
	userID := f.waitForReady("steady").Status.UserID
	token, _ := f.waitForToken("steady-token", userID, "")
	f.Eventually("token recorded in status", 10*time.Second, func() (bool, string) {
		return f.Get("steady").Status.Token != nil, "no status.token"
	})
	minted := f.tokenRequests()

	f.RestartOperator()
	// A settled resource waits for its resync after a restart; a check asked
	// for goes to Surge at once, the token step with it.
	f.Update("steady", func(o *surgev1alpha1.SurgeEndUser) {
		metav1.SetMetaDataAnnotation(&o.ObjectMeta, surgev1alpha1.AnnotationReconcileRequestedAt, "2026-12-06T12:00:00Z")
	})
	f.Eventually("the restarted operator checked the user", 10*time.Second, func() (bool, string) {
		return f.Surge.CountRequests(http.MethodGet, "/users/"+userID) > 0, "no check yet"
	})
	time.Sleep(2 * time.Second)
	if got := f.tokenRequests(); got != minted {
		t.Errorf("%d tokens minted after a restart while the stored one was fresh", got-minted)
	}
	secret, _ := f.secret("steady-token")
	if string(secret.Data["token"]) != token {
		t.Errorf("the token in the Secret changed across a restart")
	}
}

func TestRenewalRequestedByTheAnnotationMintsOnceAtOnce(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("leaked", withToken("leaked-token", 900, 0)))
	userID := f.waitForReady("leaked").Status.UserID
	first, _ := f.waitForToken("leaked-token", userID, "")
	f.Eventually("token recorded in status", 10*time.Second, func() (bool, string) {
		return f.Get("leaked").Status.Token != nil, "no status.token"
	})
	userChecks := f.Surge.CountRequests(http.MethodGet, "/users/"+userID)
	// The emulator's tokens are deterministic signatures of whole-second
	// claims: one minted within the same second would be the same bytes.
	time.Sleep(time.Second)

	f.Update("leaked", func(o *surgev1alpha1.SurgeEndUser) {
		metav1.SetMetaDataAnnotation(&o.ObjectMeta, surgev1alpha1.AnnotationRenewTokenRequestedAt, "2026-11-22T12:00:00Z")
	})
	second, _ := f.waitForToken("leaked-token", userID, first)
	f.Eventually("status.token answers the request", 10*time.Second, func() (bool, string) {
		token := f.Get("leaked").Status.Token
		return token != nil && token.RenewalRequest == "2026-11-22T12:00:00Z", fmt.Sprintf("status.token %+v", token)
	})
	f.waitForEvent("leaked", surgev1alpha1.EventTokenRenewed)
	if got := f.Surge.CountRequests(http.MethodGet, "/users/"+userID); got != userChecks {
		t.Errorf("a token renewal checked the user %d more times; it needs no user check", got-userChecks)
	}
	minted := f.tokenRequests()

	// Answered, the request is history: a restart does not take it for a
	// new one, and neither does the annotation's removal.
	f.RestartOperator()
	f.Update("leaked", func(o *surgev1alpha1.SurgeEndUser) {
		metav1.SetMetaDataAnnotation(&o.ObjectMeta, surgev1alpha1.AnnotationReconcileRequestedAt, "2026-12-06T12:00:00Z")
	})
	f.Eventually("the restarted operator checked the user", 10*time.Second, func() (bool, string) {
		return f.Surge.CountRequests(http.MethodGet, "/users/"+userID) > userChecks, "no check yet"
	})
	f.Update("leaked", func(o *surgev1alpha1.SurgeEndUser) {
		delete(o.Annotations, surgev1alpha1.AnnotationRenewTokenRequestedAt)
	})
	time.Sleep(2 * time.Second)
	if got := f.tokenRequests(); got != minted {
		t.Errorf("%d more tokens minted for a request already answered", got-minted)
	}
	if secret, _ := f.secret("leaked-token"); string(secret.Data["token"]) != second {
		t.Errorf("the token in the Secret changed without a new request")
	}
}

func TestNeverOverwritesASecretItDoesNotOwn(t *testing.T) {
	f := newFixture(t)
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: f.Namespace},
		StringData: map[string]string{"password": "hunter2"},
	}
	if err := k8s.Create(f.Ctx, foreign); err != nil {
		t.Fatal(err)
	}
	f.Create(f.endUser("intruder", withToken("taken", 60, 0)))

	obj := f.waitForCondition("intruder", "Ready", metav1.ConditionFalse, surgev1alpha1.ReasonSecretNotOwned)
	if msg := conditionOf(obj, "Ready").Message; !strings.Contains(msg, "taken") || !strings.Contains(msg, "not managed") {
		t.Errorf("Ready message %q should name the Secret and say it is not the operator's", msg)
	}
	secret, _ := f.secret("taken")
	if string(secret.Data["password"]) != "hunter2" || len(secret.Data) != 1 || len(secret.OwnerReferences) != 0 {
		t.Errorf("foreign Secret was changed: %v %v", secret.Data, secret.OwnerReferences)
	}
}

func TestRepairsAHandEditedOrDeletedSecret(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("repaired", withToken("repaired-token", 900, 0)))
	obj := f.waitForReady("repaired")
	userID := obj.Status.UserID
	f.waitForToken("repaired-token", userID, "")

	secret, _ := f.secret("repaired-token")
	secret.Data["token"] = []byte("not-a-token")
	delete(secret.Labels, "surge.app/end-user")
	if err := k8s.Update(f.Ctx, secret); err != nil {
		t.Fatal(err)
	}
	f.waitForToken("repaired-token", userID, "not-a-token")
	f.Eventually("labels restored", 10*time.Second, func() (bool, string) {
		secret, _ := f.secret("repaired-token")
		return secret.Labels["surge.app/end-user"] == string(obj.UID), fmt.Sprint(secret.Labels)
	})

	if err := k8s.Delete(f.Ctx, secret); err != nil {
		t.Fatal(err)
	}
	f.Eventually("deleted Secret recreated", 20*time.Second, func() (bool, string) {
		again, err := f.secret("repaired-token")
		if err != nil {
			return false, err.Error()
		}
		claims, err := remote.ParseTokenClaims(string(again.Data["token"]))
		return again.UID != secret.UID && err == nil && claims.Subject == userID, "not recreated yet"
	})
}

// TestRepairsTheMetadataAndDataAroundAnIntactTokenWithoutMinting: the cache
// holds no token, so this repair reads the Secret whole and keeps the token.
func TestRepairsTheMetadataAndDataAroundAnIntactTokenWithoutMinting(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("tidied", withToken("tidied-token", 900, 0)))
	userID := f.waitForReady("tidied").Status.UserID
	token, _ := f.waitForToken("tidied-token", userID, "")
	mints := f.tokenRequests()

	secret, _ := f.secret("tidied-token")
	delete(secret.Annotations, surgev1alpha1.AnnotationEndUser)
	secret.Data["note"] = []byte("added by hand")
	if err := k8s.Update(f.Ctx, secret); err != nil {
		t.Fatal(err)
	}
	f.Eventually("the Secret repaired", 20*time.Second, func() (bool, string) {
		secret, _ := f.secret("tidied-token")
		_, extra := secret.Data["note"]
		return !extra && secret.Annotations[surgev1alpha1.AnnotationEndUser] == "tidied", fmt.Sprintf("annotations %v, data keys %d", secret.Annotations, len(secret.Data))
	})
	if secret, _ := f.secret("tidied-token"); string(secret.Data["token"]) != token {
		t.Error("the repair replaced the token")
	}
	if got := f.tokenRequests(); got != mints {
		t.Errorf("%d tokens minted for a repair that keeps the token, want none", got-mints)
	}
}

func TestRemovingOrRenamingTokenSecretCleansUp(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("moving", withToken("first-token", 900, 0)))
	userID := f.waitForReady("moving").Status.UserID
	f.waitForToken("first-token", userID, "")

	f.Update("moving", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.TokenSecret.Name = "second-token" })
	f.waitForToken("second-token", userID, "")
	f.Eventually("old Secret deleted", 10*time.Second, func() (bool, string) {
		_, err := f.secret("first-token")
		return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprint(err)
	})

	f.Update("moving", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.TokenSecret = nil })
	f.Eventually("Secret deleted with tokenSecret removed", 10*time.Second, func() (bool, string) {
		_, err := f.secret("second-token")
		return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprint(err)
	})
	if obj := f.waitForReady("moving"); obj.Status.Token != nil {
		t.Errorf("status.token %+v left after tokenSecret was removed", obj.Status.Token)
	}
}

func TestFailingMintKeepsTheValidTokenAndReadyUntilItExpires(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("degraded", withToken("degraded-token", 15, 7*time.Second)))
	userID := f.waitForReady("degraded").Status.UserID
	token, claims := f.waitForToken("degraded-token", userID, "")
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/users/" + userID + "/tokens", Status: http.StatusServiceUnavailable})

	obj := f.waitForCondition("degraded", "Ready", metav1.ConditionTrue, surgev1alpha1.ReasonTokenRenewalFailing)
	if !time.Now().Before(claims.ExpiresAt) {
		t.Fatalf("renewal failure only reported after the token expired")
	}
	if msg := conditionOf(obj, "Ready").Message; !strings.Contains(msg, "degraded-token") || strings.Contains(msg, token) {
		t.Errorf("Ready message %q should name the Secret and never the token", msg)
	}
	secret, _ := f.secret("degraded-token")
	if string(secret.Data["token"]) != token {
		t.Errorf("the valid token was replaced while minting failed")
	}

	obj = f.waitForCondition("degraded", "Ready", metav1.ConditionFalse, surgev1alpha1.ReasonSurgeUnavailable)
	if time.Now().Before(claims.ExpiresAt) {
		t.Errorf("Ready turned False at %s, before the token expired at %s", time.Now(), claims.ExpiresAt)
	}
	if conditionOf(obj, "Reconciling") == nil {
		t.Errorf("Reconciling not set while retrying the mint")
	}

	f.Surge.ClearFaults()
	f.waitForTokenWithin(time.Minute, "degraded-token", userID, token)
	f.waitForReady("degraded")
}

func TestSurgeClockBehindDoesNotMakeMintingHotLoop(t *testing.T) {
	// Surge's clock lags 50s behind the operator's: a 60s token seems to the
	// operator to expire 10s after it is minted, inside renewBefore.
	f := newFixtureWithSettings(t, operatortest.Settings{
		PageSize: 5,
		SurgeNow: func() time.Time { return time.Now().Add(-50 * time.Second) },
	})
	f.Create(f.endUser("skewed", withToken("skewed-token", 60, 20*time.Second)))
	userID := f.waitForReady("skewed").Status.UserID
	f.waitForToken("skewed-token", userID, "")

	minted := f.tokenRequests()
	time.Sleep(6 * time.Second)
	// Renewing at half of the 10s that remain is a mint about every 5s;
	// planning from the expiry alone mints every second.
	if got := f.tokenRequests() - minted; got > 3 {
		t.Errorf("%d tokens minted in 6s, want at most 3", got)
	}
}

func TestALongNamedResourceGetsItsTokenSecret(t *testing.T) {
	f := newFixture(t)
	name := "a-resource-whose-name-is-longer-than-the-sixty-three-characters-of-a-label"
	f.Create(f.endUser(name, withToken("long-token", 900, 0)))
	obj := f.waitForReady(name)
	f.waitForToken("long-token", obj.Status.UserID, "")

	secret, _ := f.secret("long-token")
	if got := secret.Labels[surgev1alpha1.LabelEndUser]; got != string(obj.UID) {
		t.Errorf("label %s is %q, want the resource's uid %s", surgev1alpha1.LabelEndUser, got, obj.UID)
	}
	if got := secret.Annotations[surgev1alpha1.AnnotationEndUser]; got != name {
		t.Errorf("annotation %s is %q, want the resource's name", surgev1alpha1.AnnotationEndUser, got)
	}
}

func TestSecretRefusedByAnAdmissionPolicyStalls(t *testing.T) {
	f := newFixture(t)
	f.refuseSecretsLabelled("tier", "forbidden")
	f.Create(f.endUser("refused-secret", withToken("refused-token", 900, 0), func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.TokenSecret.Template = &surgev1alpha1.SecretTemplate{Labels: map[string]surgev1alpha1.LabelValue{"tier": "forbidden"}}
	}))

	obj := f.waitForCondition("refused-secret", "Stalled", metav1.ConditionTrue, surgev1alpha1.ReasonSecretRejected)
	if msg := conditionOf(obj, "Ready").Message; !strings.Contains(msg, "refused-token") || !strings.Contains(msg, "tier=forbidden") {
		t.Errorf("Ready message %q should name the Secret and the policy's reason", msg)
	}
	if conditionOf(obj, "Reconciling") != nil {
		t.Errorf("Reconciling set on a stalled resource")
	}
}

// refuseSecretsLabelled installs a ValidatingAdmissionPolicy, as a policy
// engine would, that refuses Secrets of the fixture's namespace carrying the
// label key=value, and waits until it is in force.
func (f *fixture) refuseSecretsLabelled(key, value string) {
	f.T.Helper()
	name := "refuse-" + f.Namespace
	reason := metav1.StatusReasonInvalid
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: fmt.Sprintf("!has(object.metadata.labels) || !(%q in object.metadata.labels) || object.metadata.labels[%q] != %q", key, key, value),
				Message:    fmt.Sprintf("Secrets labelled %s=%s are not allowed here", key, value),
				Reason:     &reason,
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.Namespace},
			}},
		},
	}
	for _, obj := range []client.Object{policy, binding} {
		if err := k8s.Create(f.Ctx, obj); err != nil {
			f.T.Fatal(err)
		}
		f.T.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	}
	f.Eventually("admission policy in force", 20*time.Second, func() (bool, string) {
		probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: f.Namespace, Labels: map[string]string{key: value}}}
		err := k8s.Create(f.Ctx, probe)
		if err == nil {
			_ = k8s.Delete(f.Ctx, probe)
			return false, "a probe Secret was admitted"
		}
		return apierrors.IsInvalid(err), err.Error()
	})
}

func TestKeepsSecretMetadataWrittenByOthers(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("shared", withToken("shared-token", 900, 0), func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.TokenSecret.Template = &surgev1alpha1.SecretTemplate{
			Labels:      map[string]surgev1alpha1.LabelValue{"app": "inbox", "tier": "web"},
			Annotations: map[string]string{"reloader.example.com/match": "true"},
		}
	}))
	f.waitForToken("shared-token", f.waitForReady("shared").Status.UserID, "")

	// A policy engine puts its label back whenever it is missing, as a
	// mutating admission webhook does on every write.
	const policyLabel = "policy.example.com/checked"
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			secret, err := f.secret("shared-token")
			if err != nil || secret.Labels[policyLabel] == "true" {
				continue
			}
			secret.Labels[policyLabel] = "true"
			_ = k8s.Update(f.Ctx, secret)
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	f.Eventually("the policy engine's label on the Secret", 10*time.Second, func() (bool, string) {
		secret, _ := f.secret("shared-token")
		return secret.Labels[policyLabel] == "true", fmt.Sprint(secret.Labels)
	})

	versions := map[string]bool{}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		secret, _ := f.secret("shared-token")
		versions[secret.ResourceVersion] = true
		time.Sleep(50 * time.Millisecond)
	}
	if len(versions) > 2 {
		t.Errorf("the Secret was written %d times in 3s while nothing changed: the operator fights the policy engine", len(versions)-1)
	}

	f.Update("shared", func(o *surgev1alpha1.SurgeEndUser) {
		delete(o.Spec.TokenSecret.Template.Labels, "tier")
	})
	f.Eventually("the label removed from the template removed from the Secret", 10*time.Second, func() (bool, string) {
		secret, _ := f.secret("shared-token")
		_, tier := secret.Labels["tier"]
		return !tier && secret.Labels["app"] == "inbox" && secret.Labels[policyLabel] == "true" &&
			secret.Annotations["reloader.example.com/match"] == "true", fmt.Sprint(secret.Labels)
	})
}

func TestExpiredTokenIsMintedSoonAfterSurgeRecovers(t *testing.T) {
	f := newFixture(t, withResync(10*time.Minute))
	f.Create(f.endUser("lapsed", withToken("lapsed-token", 15, 7*time.Second)))
	userID := f.waitForReady("lapsed").Status.UserID
	token, _ := f.waitForToken("lapsed-token", userID, "")
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/users/" + userID + "/tokens", Status: http.StatusServiceUnavailable})
	f.Eventually("the token expired while Surge fails", 40*time.Second, func() (bool, string) {
		ready := conditionOf(f.Get("lapsed"), "Ready")
		return ready != nil && ready.Reason == surgev1alpha1.ReasonSurgeUnavailable, fmt.Sprintf("Ready %+v", ready)
	})

	f.Surge.ClearFaults()
	// Retried with backoff, not left until the resync ten minutes away.
	f.waitForTokenWithin(30*time.Second, "lapsed-token", userID, token)
	f.waitForReady("lapsed")
}

func TestTokenStaysFreshWhileTheUserCheckStalls(t *testing.T) {
	f := newFixture(t, withResync(10*time.Minute))
	f.Create(f.endUser("stuck", withToken("stuck-token", 15, 7*time.Second)))
	userID := f.waitForReady("stuck").Status.UserID
	f.waitForToken("stuck-token", userID, "")

	// Someone changes the user in Surge and Surge refuses to patch it back:
	// the user check stalls, for a reason that has nothing to do with tokens.
	f.Surge.EditUser(userID, func(u *emulator.User) { u.FirstName = "Changed" })
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPatch, PathPrefix: "/users/" + userID, Status: http.StatusUnprocessableEntity})
	f.Update("stuck", func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "1"}
	})
	f.waitForCondition("stuck", "Stalled", metav1.ConditionTrue, surgev1alpha1.ReasonRequestRejected)
	secret, _ := f.secret("stuck-token")
	stalledToken := string(secret.Data["token"])

	_, claims := f.waitForToken("stuck-token", userID, stalledToken)
	if !claims.ExpiresAt.After(time.Now()) {
		t.Errorf("the token minted while stalled expired already at %s", claims.ExpiresAt)
	}
	obj := f.waitForCondition("stuck", "Stalled", metav1.ConditionTrue, surgev1alpha1.ReasonRequestRejected)
	if ready := conditionOf(obj, "Ready"); ready.Status != metav1.ConditionFalse || ready.Reason != surgev1alpha1.ReasonRequestRejected {
		t.Errorf("Ready %+v, want the stall to stay visible while the token is renewed", ready)
	}
}

func TestSecretLeftByAnUnrecordedRenameIsRemoved(t *testing.T) {
	f := newFixture(t, withResync(10*time.Minute))
	f.Create(f.endUser("renamed", withToken("current-token", 900, 0)))
	obj := f.waitForReady("renamed")
	f.waitForToken("current-token", obj.Status.UserID, "")

	// What a rename leaves when the status write that follows it fails and
	// the spec is renamed again: a Secret of this resource that neither the
	// spec nor status names.
	stray := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name:      "intermediate-token",
		Namespace: f.Namespace,
		Labels:    map[string]string{surgev1alpha1.LabelManagedBy: surgev1alpha1.LabelManagedByValue, surgev1alpha1.LabelEndUser: string(obj.UID)},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: surgev1alpha1.GroupVersion.String(), Kind: "SurgeEndUser", Name: obj.Name, UID: obj.UID,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}},
	}}
	if err := k8s.Create(f.Ctx, stray); err != nil {
		t.Fatal(err)
	}
	f.Update("renamed", func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "1"}
	})
	f.Eventually("the stray Secret removed", 10*time.Second, func() (bool, string) {
		_, err := f.secret("intermediate-token")
		return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprint(err)
	})
	if _, err := f.secret("current-token"); err != nil {
		t.Errorf("the Secret the spec names: %v", err)
	}
}

// TestRefusedSecretWritesKeepStatusOnTheStoredTokenAndMintOnce: an operator
// whose role lacks patch and update on Secrets, as the shipped role once
// lacked patch, creates the first token and then has every renewal refused.
// Status goes on describing the token the Secret holds, so that the expiry
// metric and its alert see it run out, and the retries store the one token
// already minted instead of minting another each time.
func TestRefusedSecretWritesKeepStatusOnTheStoredTokenAndMintOnce(t *testing.T) {
	rbac, err := operatortest.ReadManagerRBAC(operatortest.ManagerNamespace)
	if err != nil {
		t.Fatal(err)
	}
	role, err := rbac.ClusterRole("manager-role")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.ServiceAccountWithRules(context.Background(), "no-secret-writes", withoutVerbs(role.Rules, "secrets", "patch", "update"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWithSettings(t, operatortest.Settings{PageSize: 5, OperatorConfig: cfg})
	f.Create(f.endUser("unwritable", withToken("unwritable-token", 20, 10*time.Second)))
	userID := f.waitForReady("unwritable").Status.UserID
	token, claims := f.waitForToken("unwritable-token", userID, "")
	mints := f.tokenRequests()

	// Renewal falls due 10 to 11 seconds before expiry. The retries back
	// off 1, 2, 4 seconds; a token minted at the renewal is itself due no
	// sooner than 8 seconds later.
	f.Eventually("a renewal minted", 15*time.Second, func() (bool, string) {
		return f.tokenRequests() > mints, "no renewal yet"
	})
	f.consistently("status.token describes the token in the Secret", time.Until(claims.ExpiresAt.Add(-4*time.Second)), func() (bool, string) {
		secret, err := f.secret("unwritable-token")
		if err != nil {
			return false, err.Error()
		}
		if string(secret.Data["token"]) != token {
			return false, "the Secret was written despite the role"
		}
		status := f.Get("unwritable").Status.Token
		if status == nil || !status.ExpiresAt.Time.Equal(claims.ExpiresAt) {
			return false, fmt.Sprintf("status.token %+v, the Secret's token expires at %s", status, claims.ExpiresAt)
		}
		return true, ""
	})
	if got := f.tokenRequests() - mints; got != 1 {
		t.Errorf("%d tokens minted while the Secret refused the renewal, want the 1 the retries try to store", got)
	}
	ready := conditionOf(f.Get("unwritable"), "Ready")
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != surgev1alpha1.ReasonTokenRenewalFailing ||
		!strings.Contains(ready.Message, "unwritable-token") || !strings.Contains(ready.Message, "forbidden") {
		t.Errorf("Ready %+v, want True with %s naming the Secret and the refusal while its token is valid", ready, surgev1alpha1.ReasonTokenRenewalFailing)
	}
}

// withoutVerbs takes verbs on a core resource out of rules, leaving the
// rest of each rule as it is.
func withoutVerbs(rules []rbacv1.PolicyRule, resource string, verbs ...string) []rbacv1.PolicyRule {
	var kept []rbacv1.PolicyRule
	for _, rule := range rules {
		if !slices.Contains(rule.APIGroups, "") || !slices.Contains(rule.Resources, resource) {
			kept = append(kept, rule)
			continue
		}
		if others := slices.DeleteFunc(slices.Clone(rule.Resources), func(r string) bool { return r == resource }); len(others) > 0 {
			other := *rule.DeepCopy()
			other.Resources = others
			kept = append(kept, other)
		}
		narrowed := *rule.DeepCopy()
		narrowed.Resources = []string{resource}
		narrowed.Verbs = slices.DeleteFunc(narrowed.Verbs, func(v string) bool { return slices.Contains(verbs, v) })
		kept = append(kept, narrowed)
	}
	return kept
}
