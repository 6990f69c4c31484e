package controller

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
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
			Labels:          map[string]string{LabelManagedBy: LabelManagedByValue, LabelEndUser: "end-user-uid"},
			Annotations:     map[string]string{AnnotationEndUser: "ada"},
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
	intactData := map[string]string{SecretKeyToken: token, SecretKeyUserID: "usr_ada", SecretKeyExpiresAt: "2026-11-23T12:00:00Z"}
	cases := []struct {
		name      string
		secret    *corev1.Secret
		wantToken storedToken
	}{
		{"an intact token", tokenSecret(endUser, intactData), storedToken{consistent: true, tidy: true}},
		{"a key added by hand", tokenSecret(endUser, map[string]string{SecretKeyToken: token, SecretKeyUserID: "usr_ada", SecretKeyExpiresAt: "2026-11-23T12:00:00Z", "extra": "x"}), storedToken{consistent: true}},
		{"a token edited by hand", tokenSecret(endUser, map[string]string{SecretKeyToken: "not-a-token", SecretKeyUserID: "usr_ada", SecretKeyExpiresAt: "2026-11-23T12:00:00Z"}), storedToken{}},
		{"an expiry that disagrees", tokenSecret(endUser, map[string]string{SecretKeyToken: token, SecretKeyUserID: "usr_ada", SecretKeyExpiresAt: "2026-11-24T12:00:00Z"}), storedToken{}},
		{"a user id that disagrees", tokenSecret(endUser, map[string]string{SecretKeyToken: token, SecretKeyUserID: "usr_mallory", SecretKeyExpiresAt: "2026-11-23T12:00:00Z"}), storedToken{}},
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
			if secret.Labels[LabelEndUser] != "end-user-uid" || secret.Annotations[AnnotationEndUser] != "ada" || !isSummary(secret) {
				t.Errorf("the cached Secret lost its metadata: %+v", secret.ObjectMeta)
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
