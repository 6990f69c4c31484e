package controller

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// SlimCachedEndUser is the cache's transform for SurgeEndUsers. Reconcile
// reads its resource whole from the API server; the cache serves only the
// watches, the indexes and the metrics, and keeps what they read: the
// identity, the labels (which --watch-label-selector reads), the generation,
// the finalizers and the annotations whose change asks for a reconcile, the
// references to users and projects, and the
// status of the conditions the metrics count. Names, metadata, messages and annotations such
// as kubectl's last-applied copy of the spec stay out of memory.
func SlimCachedEndUser(in any) (any, error) {
	obj, ok := in.(*surgev1alpha1.SurgeEndUser)
	if !ok {
		return in, nil
	}
	slim := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         obj.Namespace,
			Name:              obj.Name,
			UID:               obj.UID,
			ResourceVersion:   obj.ResourceVersion,
			Generation:        obj.Generation,
			CreationTimestamp: obj.CreationTimestamp,
			DeletionTimestamp: obj.DeletionTimestamp,
			Finalizers:        obj.Finalizers,
			// --watch-label-selector may name any label.
			Labels: obj.Labels,
		},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID:      obj.Spec.AccountID,
			UserID:         obj.Spec.UserID,
			ProjectRef:     obj.Spec.ProjectRef,
			DeletionPolicy: obj.Spec.DeletionPolicy,
		},
		Status: surgev1alpha1.SurgeEndUserStatus{
			ObservedGeneration: obj.Status.ObservedGeneration,
			UserID:             obj.Status.UserID,
		},
	}
	for _, key := range []string{surgev1alpha1.AnnotationPaused, surgev1alpha1.AnnotationReconcileRequestedAt, surgev1alpha1.AnnotationRenewTokenRequestedAt, surgev1alpha1.AnnotationReleaseDeletions} {
		if value, set := obj.Annotations[key]; set {
			metav1.SetMetaDataAnnotation(&slim.ObjectMeta, key, value)
		}
	}
	for _, condition := range obj.Status.Conditions {
		if slices.Contains(cachedConditions, condition.Type) {
			if slim.Status.Conditions == nil {
				slim.Status.Conditions = make([]metav1.Condition, 0, len(cachedConditions))
			}
			slim.Status.Conditions = append(slim.Status.Conditions, metav1.Condition{Type: condition.Type, Status: condition.Status})
		}
	}
	if token := obj.Status.Token; token != nil {
		slim.Status.Token = &surgev1alpha1.TokenStatus{ExpiresAt: token.ExpiresAt}
	}
	return slim, nil
}

// cachedConditions are the conditions whose status the metrics count.
var cachedConditions = []string{surgev1alpha1.ConditionReady, surgev1alpha1.ConditionStalled}

// tokenSummaryKey holds, in the StringData of a cached token Secret, what
// its data says. The API server never returns StringData, so a summary can
// only have been written by SummarizeCachedSecret, never forged in a Secret.
const tokenSummaryKey = "surge.app/token-summary"

// metadataDigestKey holds, next to the token summary, the digest of the
// labels and annotations the operator wrote into the Secret
// (writtenMetadataDigest).
const metadataDigestKey = "surge.app/metadata-digest"

// SummarizeCachedSecret is the cache's transform for Secrets. A token Secret
// is cached as its identity, its owner and a summary of the rest: what the
// decisions read of the token (the subject, the expiry and whether the data
// agrees with itself) and a digest of the metadata the operator wrote
// (secretMetadataMatches). A Secret about to be written is read whole from
// the API server first (wholeSecret). Any other Secret that carries the
// operator's label (anyone who may write Secrets can add it) is kept as a
// bare name, so that labelling Secrets cannot grow the operator's memory.
func SummarizeCachedSecret(in any) (any, error) {
	secret, ok := in.(*corev1.Secret)
	// The informer may hand the same object in twice.
	if !ok || isSummary(secret) {
		return in, nil
	}
	slim := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Namespace:       secret.Namespace,
		Name:            secret.Name,
		UID:             secret.UID,
		ResourceVersion: secret.ResourceVersion,
	}}
	if !controlledByEndUser(secret) {
		return slim, nil
	}
	slim.DeletionTimestamp = secret.DeletionTimestamp
	slim.OwnerReferences = secret.OwnerReferences
	slim.StringData = map[string]string{
		tokenSummaryKey:   storedTokenIn(secret).format(),
		metadataDigestKey: writtenMetadataDigest(secret),
	}
	// The label finds the Secrets of an end user, through an index
	// (indexEndUserSecrets); kept beside the summary, it costs no map of
	// its own.
	if endUser, labelled := secret.Labels[surgev1alpha1.LabelEndUser]; labelled {
		slim.StringData[endUserKey] = endUser
	}
	return slim, nil
}

// endUserKey holds, next to the token summary, the Secret's LabelEndUser.
const endUserKey = "surge.app/end-user"

// endUserOfSecret is the uid of the end user whose label a cached token
// Secret carries.
func endUserOfSecret(o client.Object) []string {
	secret, ok := o.(*corev1.Secret)
	if !ok || secret.StringData[endUserKey] == "" {
		return nil
	}
	return []string{secret.StringData[endUserKey]}
}

func controlledByEndUser(secret *corev1.Secret) bool {
	owner := metav1.GetControllerOf(secret)
	return owner != nil && owner.Kind == surgev1alpha1.KindSurgeEndUser &&
		strings.HasPrefix(owner.APIVersion, surgev1alpha1.GroupVersion.Group+"/")
}

// storedToken is what a token Secret's data says.
type storedToken struct {
	claims remote.TokenClaims
	// consistent: the token is readable, and the userID and expiresAt keys
	// agree with it.
	consistent bool
	// tidy: the Secret is Opaque and its data holds the three keys and
	// nothing else.
	tidy bool
}

// storedTokenOf reads the token of secret, from the cache's summary or from
// its data.
func storedTokenOf(secret *corev1.Secret) storedToken {
	if summary, summarized := secret.StringData[tokenSummaryKey]; summarized {
		return parseStoredToken(summary)
	}
	return storedTokenIn(secret)
}

func storedTokenIn(secret *corev1.Secret) storedToken {
	claims, err := remote.ParseTokenClaims(string(secret.Data[surgev1alpha1.SecretKeyToken]))
	if err != nil {
		return storedToken{}
	}
	consistent := string(secret.Data[surgev1alpha1.SecretKeyUserID]) == claims.Subject &&
		string(secret.Data[surgev1alpha1.SecretKeyExpiresAt]) == claims.ExpiresAt.UTC().Format(time.RFC3339)
	if !consistent {
		return storedToken{}
	}
	return storedToken{
		claims:     claims,
		consistent: true,
		tidy:       secret.Type == corev1.SecretTypeOpaque && len(secret.Data) == 3,
	}
}

// format writes a consistent token as "subject expiry-in-unix-nanoseconds tidy",
// and any other as "": subjects are Surge user ids, without spaces.
func (s storedToken) format() string {
	if !s.consistent {
		return ""
	}
	return fmt.Sprintf("%s %d %t", s.claims.Subject, s.claims.ExpiresAt.UnixNano(), s.tidy)
}

func parseStoredToken(summary string) storedToken {
	fields := strings.Fields(summary)
	if len(fields) != 3 {
		return storedToken{}
	}
	expiresAt, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return storedToken{}
	}
	return storedToken{
		claims:     remote.TokenClaims{Subject: fields[0], ExpiresAt: time.Unix(0, expiresAt)},
		consistent: true,
		tidy:       fields[2] == "true",
	}
}

// isSummary says whether secret came from the cache without its data.
func isSummary(secret *corev1.Secret) bool {
	_, summarized := secret.StringData[tokenSummaryKey]
	return summarized
}
