package controller

import (
	"encoding/base64"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/claims"
)

// unsignedToken is a JWT as ParseTokenClaims reads it; the signature is
// never checked.
func unsignedToken(subject string, expiresAt time.Time) string {
	segment := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
	return segment(`{"alg":"EdDSA"}`) + "." + segment(fmt.Sprintf(`{"sub":%q,"exp":%d}`, subject, expiresAt.Unix())) + "." + segment("signature")
}

func tokenSecret(owner metav1.OwnerReference, data map[string]string) *corev1.Secret {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "team", Name: "ada-token", UID: "secret-uid", ResourceVersion: "7",
			Labels:          map[string]string{surgev1alpha1.LabelManagedBy: surgev1alpha1.LabelManagedByValue, surgev1alpha1.LabelEndUser: "end-user-uid"},
			Annotations:     map[string]string{surgev1alpha1.AnnotationEndUser: "ada"},
			OwnerReferences: []metav1.OwnerReference{owner},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "surge-operator"}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{},
	}
	for key, value := range data {
		secret.Data[key] = []byte(value)
	}
	return secret
}

func TestTheCacheKeepsATokenSecretsDecisionsButNotItsToken(t *testing.T) {
	expiresAt := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	token := unsignedToken("usr_ada", expiresAt)
	endUser := metav1.OwnerReference{APIVersion: surgev1alpha1.GroupVersion.String(), Kind: surgev1alpha1.KindSurgeEndUser, Name: "ada", UID: "end-user-uid", Controller: ptr.To(true)}
	intactData := map[string]string{surgev1alpha1.SecretKeyToken: token, surgev1alpha1.SecretKeyUserID: "usr_ada", surgev1alpha1.SecretKeyExpiresAt: "2026-11-23T12:00:00Z"}
	cases := []struct {
		name      string
		secret    *corev1.Secret
		wantToken storedToken
	}{
		{"an intact token", tokenSecret(endUser, intactData), storedToken{consistent: true, tidy: true}},
		{"a key added by hand", tokenSecret(endUser, map[string]string{surgev1alpha1.SecretKeyToken: token, surgev1alpha1.SecretKeyUserID: "usr_ada", surgev1alpha1.SecretKeyExpiresAt: "2026-11-23T12:00:00Z", "extra": "x"}), storedToken{consistent: true}},
		{"a token edited by hand", tokenSecret(endUser, map[string]string{surgev1alpha1.SecretKeyToken: "not-a-token", surgev1alpha1.SecretKeyUserID: "usr_ada", surgev1alpha1.SecretKeyExpiresAt: "2026-11-23T12:00:00Z"}), storedToken{}},
		{"an expiry that disagrees", tokenSecret(endUser, map[string]string{surgev1alpha1.SecretKeyToken: token, surgev1alpha1.SecretKeyUserID: "usr_ada", surgev1alpha1.SecretKeyExpiresAt: "2026-11-24T12:00:00Z"}), storedToken{}},
		{"a user id that disagrees", tokenSecret(endUser, map[string]string{surgev1alpha1.SecretKeyToken: token, surgev1alpha1.SecretKeyUserID: "usr_mallory", surgev1alpha1.SecretKeyExpiresAt: "2026-11-23T12:00:00Z"}), storedToken{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			direct := storedTokenOf(c.secret)
			cached, err := SummarizeCachedSecret(c.secret.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			secret := cached.(*corev1.Secret)
			if secret.Data != nil || secret.ManagedFields != nil {
				t.Errorf("the cached Secret keeps its data %v or managed fields", secret.Data)
			}
			if strings.Contains(fmt.Sprint(secret), token) {
				t.Error("the cached Secret holds the token")
			}
			if client.ObjectKeyFromObject(secret) != client.ObjectKeyFromObject(c.secret) || secret.UID != c.secret.UID || secret.ResourceVersion != c.secret.ResourceVersion ||
				!reflect.DeepEqual(secret.OwnerReferences, c.secret.OwnerReferences) || !isSummary(secret) {
				t.Errorf("the cached Secret lost its identity or owner: %+v", secret.ObjectMeta)
			}
			if secret.Labels != nil || secret.Annotations != nil {
				t.Errorf("cached labels %v and annotations %v, want none", secret.Labels, secret.Annotations)
			}
			if got := endUserOfSecret(secret); !slices.Equal(got, []string{"end-user-uid"}) {
				t.Errorf("the cached Secret is indexed under the end users %v, want the one its label names", got)
			}
			summarized := storedTokenOf(secret)
			if summarized != direct {
				t.Errorf("the summary says %+v, the data %+v", summarized, direct)
			}
			if summarized.consistent != c.wantToken.consistent || summarized.tidy != c.wantToken.tidy {
				t.Errorf("consistent %t, tidy %t; want %t, %t", summarized.consistent, summarized.tidy, c.wantToken.consistent, c.wantToken.tidy)
			}
			if c.wantToken.consistent && (summarized.claims.Subject != "usr_ada" || !summarized.claims.ExpiresAt.Equal(expiresAt)) {
				t.Errorf("claims %+v", summarized.claims)
			}
		})
	}
}

// TestTheCachedSecretJudgesItsMetadataAsTheWholeSecretDoes: the metadata of
// a token Secret matches exactly when writing it would change nothing,
// whether the Secret is read whole or from the cache's summary.
func TestTheCachedSecretJudgesItsMetadataAsTheWholeSecretDoes(t *testing.T) {
	endUser := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "ada", UID: "end-user-uid"},
		Spec: surgev1alpha1.SurgeEndUserSpec{TokenSecret: &surgev1alpha1.TokenSecretSpec{
			Name: "ada-token",
			Template: &surgev1alpha1.SecretTemplate{
				Labels:      map[string]surgev1alpha1.LabelValue{"team": "analytics"},
				Annotations: map[string]string{"note": "line one\nline \"two\" = 2"},
			},
		}},
	}
	owner := metav1.OwnerReference{APIVersion: surgev1alpha1.GroupVersion.String(), Kind: surgev1alpha1.KindSurgeEndUser, Name: "ada", UID: "end-user-uid", Controller: ptr.To(true)}
	written := func(edit func(labels, annotations map[string]string)) *corev1.Secret {
		secret := tokenSecret(owner, nil)
		secret.Labels, secret.Annotations = secretMetadata(secret, endUser)
		edit(secret.Labels, secret.Annotations)
		return secret
	}
	cases := []struct {
		name  string
		edit  func(labels, annotations map[string]string)
		match bool
	}{
		{"as written", func(_, _ map[string]string) {}, true},
		{"with keys others added", func(labels, annotations map[string]string) {
			labels["policy"] = "checked"
			annotations["mutated-by"] = "webhook"
		}, true},
		{"a template label changed", func(labels, _ map[string]string) { labels["team"] = "billing" }, false},
		{"a template annotation removed", func(_, annotations map[string]string) { delete(annotations, "note") }, false},
		{"an annotation value that reads like two keys", func(_, annotations map[string]string) {
			annotations["note"] = "line one\nline \"two\""
			annotations[surgev1alpha1.AnnotationEndUser] = "ada\" true \"x"
		}, false},
		{"the end-user label removed", func(labels, _ map[string]string) { delete(labels, surgev1alpha1.LabelEndUser) }, false},
		{"the name annotation changed", func(_, annotations map[string]string) { annotations[surgev1alpha1.AnnotationEndUser] = "mallory" }, false},
		{"a key the template dropped still there", func(labels, annotations map[string]string) {
			labels["old"] = "x"
			annotations[surgev1alpha1.AnnotationTemplateKeys] = "labels=old,team;annotations=note"
		}, false},
		{"no record of the template keys", func(_, annotations map[string]string) { delete(annotations, surgev1alpha1.AnnotationTemplateKeys) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			secret := written(c.edit)
			labels, annotations := secretMetadata(secret, endUser)
			writeChangesNothing := maps.Equal(secret.Labels, labels) && maps.Equal(secret.Annotations, annotations)
			if writeChangesNothing != c.match {
				t.Fatalf("a write would change nothing: %t; the case expects a match: %t", writeChangesNothing, c.match)
			}
			if got := secretMetadataMatches(secret, endUser); got != c.match {
				t.Errorf("the whole Secret matches: %t, want %t", got, c.match)
			}
			cached, err := SummarizeCachedSecret(secret.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			if got := secretMetadataMatches(cached.(*corev1.Secret), endUser); got != c.match {
				t.Errorf("the cached Secret matches: %t, want %t", got, c.match)
			}
		})
	}
}

func TestTheCacheKeepsOnlyTheNameOfALabelledSecretThatIsNotATokenSecret(t *testing.T) {
	big := map[string]string{"payload": strings.Repeat("x", 1<<20)}
	for name, owner := range map[string]metav1.OwnerReference{
		"no SurgeEndUser controls it":   {APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "deployment-uid", Controller: ptr.To(true)},
		"a SurgeEndUser merely owns it": {APIVersion: surgev1alpha1.GroupVersion.String(), Kind: surgev1alpha1.KindSurgeEndUser, Name: "ada", UID: "end-user-uid"},
	} {
		t.Run(name, func(t *testing.T) {
			cached, err := SummarizeCachedSecret(tokenSecret(owner, big))
			if err != nil {
				t.Fatal(err)
			}
			secret := cached.(*corev1.Secret)
			want := metav1.ObjectMeta{Namespace: "team", Name: "ada-token", UID: "secret-uid", ResourceVersion: "7"}
			if fmt.Sprint(secret.ObjectMeta) != fmt.Sprint(want) || secret.Data != nil || secret.StringData != nil {
				t.Errorf("cached %+v, want only %+v", secret, want)
			}
		})
	}
}

func TestAStringDataKeyFromTheAPIServerIsNotTakenForASummary(t *testing.T) {
	// StringData is write-only: an object read from the API server never
	// has it, so only the cache's transform can have set it.
	secret := tokenSecret(metav1.OwnerReference{}, map[string]string{tokenSummaryKey: "usr_ada 1 true"})
	if isSummary(secret) || storedTokenOf(secret).consistent {
		t.Error("a data key named like the summary was trusted")
	}
}

func TestTheCacheKeepsOfASurgeEndUserWhatItsReadersUse(t *testing.T) {
	deleted := metav1.NewTime(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	full := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "team", Name: "ada", UID: "end-user-uid", ResourceVersion: "9", Generation: 3,
			CreationTimestamp: metav1.NewTime(deleted.Add(-time.Hour)), DeletionTimestamp: &deleted,
			Finalizers: []string{surgev1alpha1.Finalizer},
			Labels:     map[string]string{"team": "analytics"},
			Annotations: map[string]string{
				surgev1alpha1.AnnotationPaused: "true", surgev1alpha1.AnnotationReconcileRequestedAt: "now", surgev1alpha1.AnnotationRenewTokenRequestedAt: "then",
				surgev1alpha1.AnnotationCreatePending:              "2026-11-23T11:00:00Z",
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096),
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID: "acct_1", UserID: "usr_adopted", FirstName: "Ada", LastName: "Lovelace", PhotoURL: "https://example.com/ada.png",
			Metadata:       map[string]string{"team": "analytics"},
			ProjectRef:     &surgev1alpha1.ProjectReference{Kind: surgev1alpha1.KindSurgeProject, Name: "billing"},
			DeletionPolicy: surgev1alpha1.DeletionPolicyOrphan,
			TokenSecret:    &surgev1alpha1.TokenSecretSpec{Name: "ada-token", DurationSeconds: 900},
		},
		Status: surgev1alpha1.SurgeEndUserStatus{
			ObservedGeneration: 3, UserID: "usr_recorded", CreateMarker: "2026-11-23T11:00:00Z",
			Conditions: []metav1.Condition{
				{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "UserClaimed", Message: strings.Repeat("m", 200)},
				{Type: surgev1alpha1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: "UserClaimed"},
				{Type: surgev1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "UserClaimed", Message: strings.Repeat("m", 200)},
			},
			Token: &surgev1alpha1.TokenStatus{SecretName: "ada-token", ExpiresAt: deleted, RenewAt: deleted},
		},
	}
	cached, err := SlimCachedEndUser(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	slim := cached.(*surgev1alpha1.SurgeEndUser)

	if !slices.Equal(userIDsOf(slim), userIDsOf(full)) || !slices.Equal(projectRefOf(slim), projectRefOf(full)) {
		t.Errorf("indexed as users %v and projects %v, want %v and %v", userIDsOf(slim), projectRefOf(slim), userIDsOf(full), projectRefOf(full))
	}
	if keyOf(slim) != keyOf(full) || slim.UID != full.UID || slim.Generation != full.Generation ||
		!slim.CreationTimestamp.Equal(&full.CreationTimestamp) || !slim.DeletionTimestamp.Equal(full.DeletionTimestamp) ||
		!slices.Equal(slim.Finalizers, full.Finalizers) || claims.Released(slim) != claims.Released(full) || !maps.Equal(slim.Labels, full.Labels) {
		t.Errorf("the identity, labels, finalizers or deletion differ: %+v", slim.ObjectMeta)
	}
	wantAnnotations := map[string]string{surgev1alpha1.AnnotationPaused: "true", surgev1alpha1.AnnotationReconcileRequestedAt: "now", surgev1alpha1.AnnotationRenewTokenRequestedAt: "then"}
	if !maps.Equal(slim.Annotations, wantAnnotations) || slim.ManagedFields != nil {
		t.Errorf("annotations %v; want only %v", slim.Annotations, wantAnnotations)
	}
	for _, conditionType := range []string{surgev1alpha1.ConditionReady, surgev1alpha1.ConditionStalled} {
		condition := apimeta.FindStatusCondition(full.Status.Conditions, conditionType)
		kept := apimeta.FindStatusCondition(slim.Status.Conditions, conditionType)
		if kept == nil || kept.Status != condition.Status || kept.Message != "" {
			t.Errorf("condition %s cached as %+v", conditionType, kept)
		}
	}
	if len(slim.Status.Conditions) != 2 {
		t.Errorf("cached conditions %+v, want only Ready and Stalled, which the metrics count", slim.Status.Conditions)
	}
	if slim.Status.Token == nil || !slim.Status.Token.ExpiresAt.Equal(&full.Status.Token.ExpiresAt) {
		t.Errorf("token status cached as %+v", slim.Status.Token)
	}
	if slim.Spec.FirstName != "" || slim.Spec.Metadata != nil || slim.Spec.TokenSecret != nil {
		t.Errorf("the cached spec keeps what no reader needs: %+v", slim.Spec)
	}
}
