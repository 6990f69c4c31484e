package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete

// reconcileToken keeps a fresh component token in the Secret named by
// spec.tokenSecret, renewing it before it expires, and removes a Secret the
// spec no longer names. It sets status.token to the token the Secret holds.
func (r *SurgeEndUserReconciler) reconcileToken(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) error {
	spec := obj.Spec.TokenSecret
	if err := r.removeUnwantedTokenSecrets(ctx, obj); err != nil {
		return err
	}
	if spec == nil {
		r.unstoredTokens.forget(obj.UID)
		obj.Status.Token = nil
		return nil
	}

	secret, err := r.ownedSecret(ctx, obj, spec.Name)
	if err != nil {
		return err
	}
	now := r.Clock.Now()
	stored, intact := readToken(secret, obj.Status.UserID)
	claims := stored.claims
	requested := renewalRequested(obj)
	if intact {
		// Status describes the token the Secret holds, and goes on doing
		// so if storing the next one fails: the expiry metric and its
		// alert read it.
		renewAt := plannedRenewal(obj.Status.Token, claims.ExpiresAt, tokenLifetime(spec), renewBefore(spec))
		r.recordToken(obj, claims.ExpiresAt, renewAt)
		if now.Before(renewAt) && !requested {
			// A token kept from a write that failed yet reached the
			// Secret is the stored one now, or one no longer needed.
			r.unstoredTokens.forget(obj.UID)
			return r.keepTokenSecret(ctx, obj, secret, stored)
		}
	}

	next, err := r.nextToken(ctx, api, obj, now)
	if err == nil {
		err = r.writeTokenSecret(ctx, obj, secret, []byte(next.token), next.claims)
	}
	if err != nil {
		if intact && now.Before(claims.ExpiresAt) {
			return &degradedError{message: fmt.Sprintf(
				"the token in Secret %s stays valid until %s, but renewing it failed: %v",
				spec.Name, claims.ExpiresAt.UTC().Format(time.RFC3339), err), err: err}
		}
		return err
	}
	r.unstoredTokens.forget(obj.UID)
	r.recordToken(obj, next.claims.ExpiresAt, next.renewAt)
	obj.Status.Token.RenewalRequest = obj.Annotations[surgev1alpha1.AnnotationRenewTokenRequestedAt]
	if requested && intact {
		rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventTokenRenewed, "RenewToken",
			"Minted a new component token into Secret %s, as the annotation %s asked", spec.Name, surgev1alpha1.AnnotationRenewTokenRequestedAt)
	}
	return nil
}

// nextToken is the token to store: the one minted earlier whose Secret
// write failed, while it is fresh, or a new one, kept until a write stores
// it. Each mint is a credential that stays valid in Surge until it expires,
// so a write that keeps failing must not mint again at every retry.
func (r *SurgeEndUserReconciler) nextToken(ctx context.Context, api EndUserRemote, obj *surgev1alpha1.SurgeEndUser, now time.Time) (unstoredToken, error) {
	spec := obj.Spec.TokenSecret
	if kept, ok := r.unstoredTokens.fresh(obj, now); ok {
		return kept, nil
	}
	token, err := api.MintToken(ctx, obj.Status.UserID, int(spec.DurationSeconds))
	if err != nil {
		return unstoredToken{}, classifyRemoteError("mint a component token", err, &obj.Spec)
	}
	// The operator has no Surge public key, so it cannot check the token's
	// signature; it checks what it can read: the subject and the expiry.
	minted, err := remote.ParseTokenClaims(token)
	if err != nil {
		return unstoredToken{}, fmt.Errorf("surge returned an unreadable component token: %w", err)
	}
	if minted.Subject != obj.Status.UserID {
		return unstoredToken{}, fmt.Errorf("surge returned a component token for %s instead of %s; refusing it", minted.Subject, obj.Status.UserID)
	}
	next := unstoredToken{
		token:           token,
		claims:          minted,
		durationSeconds: spec.DurationSeconds,
		renewAt:         renewalAfterMint(now, minted.ExpiresAt, tokenLifetime(spec), renewBefore(spec), rand.Float64()),
	}
	r.unstoredTokens.keep(obj.UID, next)
	return next, nil
}

// unstoredToken is a minted token and when it is due for renewal.
type unstoredToken struct {
	token           string
	claims          remote.TokenClaims
	durationSeconds int32
	renewAt         time.Time
}

// unstoredTokens keeps, per resource, the token minted and not yet stored
// in its Secret, for the next attempt to store. It lives in memory: after a
// restart a new token is minted.
type unstoredTokens struct {
	mu     sync.Mutex
	tokens map[types.UID]unstoredToken
}

func newUnstoredTokens() *unstoredTokens {
	return &unstoredTokens{tokens: map[types.UID]unstoredToken{}}
}

func (u *unstoredTokens) keep(uid types.UID, token unstoredToken) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.tokens[uid] = token
}

// fresh returns the kept token of obj if it is for its user and lifetime,
// and not yet due for renewal itself.
func (u *unstoredTokens) fresh(obj *surgev1alpha1.SurgeEndUser, now time.Time) (unstoredToken, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	token, ok := u.tokens[obj.UID]
	if !ok {
		return unstoredToken{}, false
	}
	if token.claims.Subject != obj.Status.UserID || token.durationSeconds != obj.Spec.TokenSecret.DurationSeconds || !now.Before(token.renewAt) {
		delete(u.tokens, obj.UID)
		return unstoredToken{}, false
	}
	return token, true
}

func (u *unstoredTokens) forget(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.tokens, uid)
}

// renewalRequested says whether the annotation surge.app/renew-token-requested-at
// holds a value that no token has answered yet. A value removed, or put
// back as it was, asks for nothing.
func renewalRequested(obj *surgev1alpha1.SurgeEndUser) bool {
	value := obj.Annotations[surgev1alpha1.AnnotationRenewTokenRequestedAt]
	if value == "" {
		return false
	}
	return obj.Status.Token == nil || obj.Status.Token.RenewalRequest != value
}

// tokenDue says whether the token needs work before the next user check:
// its renewal time has come, or its Secret is not what the status describes.
func (r *SurgeEndUserReconciler) tokenDue(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (bool, time.Duration) {
	spec, status := obj.Spec.TokenSecret, obj.Status.Token
	if spec == nil {
		return status != nil, 0
	}
	if status == nil || status.SecretName != spec.Name || obj.Status.UserID == "" || renewalRequested(obj) {
		return true, 0
	}
	secret := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: spec.Name}, secret); err != nil {
		return true, 0
	}
	stored, intact := readToken(secret, obj.Status.UserID)
	if !intact || !stored.tidy || !stored.claims.ExpiresAt.Equal(status.ExpiresAt.Time) || !secretMetadataMatches(secret, obj) {
		return true, 0
	}
	wait := status.RenewAt.Sub(r.Clock.Now())
	return wait <= 0, wait
}

// ownedSecret returns the Secret of that name if this resource owns it, an
// empty Secret to create if there is none, and a stall if someone else's
// Secret has the name.
func (r *SurgeEndUserReconciler) ownedSecret(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: obj.Namespace, Name: name}
	secret := &corev1.Secret{}
	// The cache holds only Secrets labelled as the operator's; one without
	// the label may still exist, so ask the API server before creating.
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, secret)
	}
	if apierrors.IsNotFound(err) {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: name}}, nil
	}
	if err != nil {
		return nil, err
	}
	if !ownedBy(secret, obj) {
		return nil, stalled(surgev1alpha1.ReasonSecretNotOwned,
			"Secret %s exists and is not managed by this SurgeEndUser; the operator never overwrites it: delete it or choose another spec.tokenSecret.name", name)
	}
	return secret, nil
}

// keepTokenSecret repairs the metadata and data around a token that stays.
func (r *SurgeEndUserReconciler) keepTokenSecret(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, secret *corev1.Secret, stored storedToken) error {
	if stored.tidy && secretMetadataMatches(secret, obj) {
		return nil
	}
	whole, err := r.wholeSecret(ctx, obj, secret)
	if err != nil {
		return err
	}
	if _, intact := readToken(whole, obj.Status.UserID); !intact {
		return fmt.Errorf("token Secret %s changed while being repaired; trying again", secret.Name)
	}
	return r.writeTokenSecret(ctx, obj, whole, whole.Data[surgev1alpha1.SecretKeyToken], stored.claims)
}

// writeTokenSecret stores the token and the operator's metadata in secret,
// creating it when new and writing it only when something changed.
func (r *SurgeEndUserReconciler) writeTokenSecret(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, secret *corev1.Secret, token []byte, claims remote.TokenClaims) error {
	data := map[string][]byte{
		surgev1alpha1.SecretKeyToken:     token,
		surgev1alpha1.SecretKeyExpiresAt: []byte(claims.ExpiresAt.UTC().Format(time.RFC3339)),
		surgev1alpha1.SecretKeyUserID:    []byte(obj.Status.UserID),
	}
	if isSummary(secret) && storedTokenOf(secret).tidy && secretMetadataMatches(secret, obj) {
		return r.replaceTokenData(ctx, secret, data)
	}
	secret, err := r.wholeSecret(ctx, obj, secret)
	if err != nil {
		return err
	}
	desired := secret.DeepCopy()
	desired.Type = corev1.SecretTypeOpaque
	desired.Data = data
	desired.Labels, desired.Annotations = secretMetadata(secret, obj)
	if err := controllerutil.SetControllerReference(obj, desired, r.Scheme()); err != nil {
		return err
	}
	if secret.ResourceVersion == "" {
		return classifySecretWriteError("create", secret.Name, r.Create(ctx, desired))
	}
	if equality.Semantic.DeepEqual(secret, desired) {
		return nil
	}
	return classifySecretWriteError("update", secret.Name, r.Update(ctx, desired))
}

// replaceTokenData writes data into a token Secret that the cache's summary
// shows as it should be but for its data: of the operator's type, with the
// token's keys and no other, and the operator's metadata. A merge patch of
// the data, refused if the Secret changed since, writes it without reading
// the Secret first.
func (r *SurgeEndUserReconciler) replaceTokenData(ctx context.Context, secret *corev1.Secret, data map[string][]byte) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]string{"resourceVersion": secret.ResourceVersion},
		"data":     data,
	})
	if err != nil {
		return err
	}
	return classifySecretWriteError("update", secret.Name, r.Patch(ctx, secret.DeepCopy(), client.RawPatch(types.MergePatchType, patch)))
}

// wholeSecret returns secret with all its metadata and data. The cache holds
// a summary of each token Secret, so one about to be written is read from
// the API server first.
func (r *SurgeEndUserReconciler) wholeSecret(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, secret *corev1.Secret) (*corev1.Secret, error) {
	if !isSummary(secret) {
		return secret, nil
	}
	whole := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), whole); err != nil {
		return nil, fmt.Errorf("reading token Secret %s: %w", secret.Name, err)
	}
	if !ownedBy(whole, obj) {
		return nil, fmt.Errorf("token Secret %s changed while being written; trying again", secret.Name)
	}
	return whole, nil
}

// removeUnwantedTokenSecrets deletes the Secrets of obj that the spec no
// longer names: the one recorded in status (tokenSecret removed or renamed),
// and any other it owns, such as one created by a rename whose status write
// failed before the spec was renamed again.
func (r *SurgeEndUserReconciler) removeUnwantedTokenSecrets(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) error {
	wanted := ""
	if obj.Spec.TokenSecret != nil {
		wanted = obj.Spec.TokenSecret.Name
	}
	owned := &corev1.SecretList{}
	if err := r.List(ctx, owned, client.MatchingFields{indexEndUserSecrets: string(obj.UID)}); err != nil {
		return err
	}
	candidates := slices.DeleteFunc(owned.Items, func(s corev1.Secret) bool { return s.Namespace != obj.Namespace })
	// A Secret written before LabelEndUser held the uid is found by its
	// name in status.
	if status := obj.Status.Token; status != nil && status.SecretName != wanted &&
		!slices.ContainsFunc(candidates, func(s corev1.Secret) bool { return s.Name == status.SecretName }) {
		recorded := corev1.Secret{}
		err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: status.SecretName}, &recorded)
		if client.IgnoreNotFound(err) != nil {
			return err
		}
		if err == nil {
			candidates = append(candidates, recorded)
		}
	}
	for i := range candidates {
		secret := &candidates[i]
		if secret.Name == wanted || !ownedBy(secret, obj) {
			continue
		}
		if err := r.Delete(ctx, secret, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &secret.UID}}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting token Secret %s: %w", secret.Name, err)
		}
	}
	return nil
}

// dropTokenSecret deletes the token Secret recorded in status, for a
// resource that has let go of its user: the token it holds must not outlive
// that.
func (r *SurgeEndUserReconciler) dropTokenSecret(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) error {
	r.unstoredTokens.forget(obj.UID)
	status := obj.Status.Token
	if status == nil {
		return nil
	}
	secret := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: status.SecretName}, secret)
	if err == nil && ownedBy(secret, obj) {
		err = r.Delete(ctx, secret, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &secret.UID}})
	}
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting token Secret %s: %w", status.SecretName, err)
	}
	obj.Status.Token = nil
	return nil
}

// recordToken describes in status the token in the Secret; the renewal
// request it answers stays as recorded until a mint answers another.
func (r *SurgeEndUserReconciler) recordToken(obj *surgev1alpha1.SurgeEndUser, expiresAt, renewAt time.Time) {
	answered := ""
	if obj.Status.Token != nil {
		answered = obj.Status.Token.RenewalRequest
	}
	obj.Status.Token = &surgev1alpha1.TokenStatus{
		SecretName:     obj.Spec.TokenSecret.Name,
		ExpiresAt:      metav1.NewTime(expiresAt),
		RenewAt:        metav1.NewTime(renewAt),
		RenewalRequest: answered,
	}
}

// readToken reads the token kept in secret and says whether it is intact:
// readable, for this user, and with data that agrees with it.
func readToken(secret *corev1.Secret, userID string) (storedToken, bool) {
	if secret == nil || secret.ResourceVersion == "" {
		return storedToken{}, false
	}
	stored := storedTokenOf(secret)
	return stored, stored.consistent && stored.claims.Subject == userID
}

func ownedBy(secret *corev1.Secret, obj *surgev1alpha1.SurgeEndUser) bool {
	owner := metav1.GetControllerOf(secret)
	return owner != nil && owner.UID == obj.UID
}

// secretMetadataMatches says whether secret is this resource's and its
// metadata is as secretMetadata would write it. That is so exactly when the
// keys the operator wrote into secret hold what it would write now: the
// template-keys annotation is one of them, so the keys written agree too.
func secretMetadataMatches(secret *corev1.Secret, obj *surgev1alpha1.SurgeEndUser) bool {
	written := secret.StringData[metadataDigestKey]
	if !isSummary(secret) {
		written = writtenMetadataDigest(secret)
	}
	labels, annotations := ownMetadata(obj)
	wanted := metadataDigest(labels, annotations, slices.Collect(maps.Keys(labels)), slices.Collect(maps.Keys(annotations)))
	return ownedBy(secret, obj) && written == wanted
}

// writtenMetadataDigest is the digest of the keys the operator wrote into
// secret: its own, and those its template-keys annotation lists.
func writtenMetadataDigest(secret *corev1.Secret) string {
	templateLabels, templateAnnotations := parseTemplateKeys(secret.Annotations[surgev1alpha1.AnnotationTemplateKeys])
	return metadataDigest(secret.Labels, secret.Annotations,
		append(templateLabels, surgev1alpha1.LabelManagedBy, surgev1alpha1.LabelEndUser),
		append(templateAnnotations, surgev1alpha1.AnnotationEndUser, surgev1alpha1.AnnotationTemplateKeys))
}

// metadataDigest hashes what labelKeys and annotationKeys hold in labels and
// annotations, a missing key included: two Secrets have the same digest
// exactly when they agree on those keys.
func metadataDigest(labels, annotations map[string]string, labelKeys, annotationKeys []string) string {
	hash := sha256.New()
	for _, part := range []struct {
		kind   string
		values map[string]string
		keys   []string
	}{{"label", labels, labelKeys}, {"annotation", annotations, annotationKeys}} {
		for _, key := range slices.Compact(slices.Sorted(slices.Values(part.keys))) {
			value, set := part.values[key]
			fmt.Fprintf(hash, "%s %q %t %q\n", part.kind, key, set, value)
		}
	}
	return hex.EncodeToString(hash.Sum(nil))
}

// secretMetadata is the labels and annotations secret must have: the keys
// the operator owns set as the spec says, template keys it wrote earlier and
// the template no longer has removed, and every other key kept as it is.
func secretMetadata(secret *corev1.Secret, obj *surgev1alpha1.SurgeEndUser) (labels, annotations map[string]string) {
	ownLabels, ownAnnotations := ownMetadata(obj)
	writtenLabels, writtenAnnotations := parseTemplateKeys(secret.Annotations[surgev1alpha1.AnnotationTemplateKeys])
	return mergeOwnedKeys(secret.Labels, ownLabels, writtenLabels),
		mergeOwnedKeys(secret.Annotations, ownAnnotations, writtenAnnotations)
}

// ownMetadata is the labels and annotations the operator sets on the token
// Secret of obj: the template's and its own.
func ownMetadata(obj *surgev1alpha1.SurgeEndUser) (labels, annotations map[string]string) {
	templateLabels, templateAnnotations := map[string]string{}, map[string]string{}
	if template := obj.Spec.TokenSecret.Template; template != nil {
		for key, value := range template.Labels {
			templateLabels[key] = string(value)
		}
		maps.Copy(templateAnnotations, template.Annotations)
	}
	labels = maps.Clone(templateLabels)
	labels[surgev1alpha1.LabelManagedBy] = surgev1alpha1.LabelManagedByValue
	labels[surgev1alpha1.LabelEndUser] = string(obj.UID)
	annotations = maps.Clone(templateAnnotations)
	annotations[surgev1alpha1.AnnotationEndUser] = obj.Name
	annotations[surgev1alpha1.AnnotationTemplateKeys] = formatTemplateKeys(templateLabels, templateAnnotations)
	return labels, annotations
}

// mergeOwnedKeys sets own over current and removes the keys once written
// that own no longer has.
func mergeOwnedKeys(current, own map[string]string, written []string) map[string]string {
	merged := maps.Clone(current)
	if merged == nil {
		merged = map[string]string{}
	}
	for _, key := range written {
		if _, kept := own[key]; !kept {
			delete(merged, key)
		}
	}
	maps.Copy(merged, own)
	return merged
}

// formatTemplateKeys writes the template's keys as
// "labels=a,b;annotations=c", sorted; label and annotation keys never
// contain ',', ';' or '='.
func formatTemplateKeys(labels, annotations map[string]string) string {
	return "labels=" + strings.Join(slices.Sorted(maps.Keys(labels)), ",") +
		";annotations=" + strings.Join(slices.Sorted(maps.Keys(annotations)), ",")
}

func parseTemplateKeys(value string) (labels, annotations []string) {
	for part := range strings.SplitSeq(value, ";") {
		kind, keys, _ := strings.Cut(part, "=")
		if keys == "" {
			continue
		}
		switch kind {
		case "labels":
			labels = strings.Split(keys, ",")
		case "annotations":
			annotations = strings.Split(keys, ",")
		}
	}
	return labels, annotations
}

func tokenLifetime(spec *surgev1alpha1.TokenSecretSpec) time.Duration {
	return time.Duration(spec.DurationSeconds) * time.Second
}

func renewBefore(spec *surgev1alpha1.TokenSecretSpec) time.Duration {
	if spec.RenewBefore != nil {
		return spec.RenewBefore.Duration
	}
	return 0
}

// plannedRenewal is when a token expiring at expiresAt is renewed. A plan
// already in status for this very token is kept, so that a restart neither
// re-mints nor moves the time; otherwise it is renewBefore (default a third
// of the lifetime) ahead of expiry, brought forward by up to a tenth of that
// (at most a minute) so that tokens minted together are not renewed in the
// same second. Times are whole seconds, as status stores them.
func plannedRenewal(current *surgev1alpha1.TokenStatus, expiresAt time.Time, lifetime, before time.Duration) time.Time {
	if current != nil && current.ExpiresAt.Time.Equal(expiresAt) && !current.RenewAt.IsZero() {
		return current.RenewAt.Time
	}
	return renewalTime(expiresAt, lifetime, before, rand.Float64())
}

// renewalTime is the pure core of plannedRenewal; spread in [0,1) picks the
// jitter.
func renewalTime(expiresAt time.Time, lifetime, before time.Duration, spread float64) time.Time {
	if before <= 0 {
		before = lifetime / 3
	}
	jitter := min(before/10, time.Minute)
	return expiresAt.Add(-before - time.Duration(spread*float64(jitter))).Truncate(time.Second)
}

// minRenewalWait is the least time a freshly minted token is kept, however
// short its lifetime looks on the operator's clock.
const minRenewalWait = 5 * time.Second

// renewalAfterMint is when a token minted at mintedAt, by the operator's
// clock, is renewed. The expiry comes from Surge's clock, so it is planned
// from the lifetime actually granted as seen here (at most the one
// requested), and renewBefore is capped at half of it: a Surge clock that
// lags, or a lifetime shorter than asked for, would otherwise put the renewal
// in the past at mint and mint again at once, forever. An expiry that is no
// later than the mint on this clock tells nothing, and the requested lifetime
// is assumed. spread in [0,1) picks the jitter, as in renewalTime.
func renewalAfterMint(mintedAt, expiresAt time.Time, requested, before time.Duration, spread float64) time.Time {
	granted := expiresAt.Sub(mintedAt)
	if granted <= 0 || granted > requested {
		granted = requested
	}
	if before <= 0 {
		before = granted / 3
	}
	before = min(before, granted/2)
	jitter := min(before/10, time.Minute)
	renewAt := mintedAt.Add(granted - before - time.Duration(spread*float64(jitter))).Truncate(time.Second)
	return later(renewAt, mintedAt.Add(minRenewalWait).Truncate(time.Second))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
