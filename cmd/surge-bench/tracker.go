package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
)

// convergenceTracker watches a namespace and notes the moment its last
// SurgeEndUser became Ready, for its generation, with its token Secret in
// place when the users have one. Watching, rather than polling, times that moment closely and adds
// no load on the API server the manager shares.
type convergenceTracker struct {
	expected int

	mu          sync.Mutex
	users       map[string]trackedUser
	done        int
	convergedAt time.Time
	converged   chan struct{}
}

type trackedUser struct {
	ready     bool
	hasSecret bool
}

func (u trackedUser) done() bool { return u.ready && u.hasSecret }

func trackConvergence(ctx context.Context, cfg *rest.Config, namespace string, expected int, withSecrets bool) (*convergenceTracker, error) {
	t := &convergenceTracker{expected: expected, users: map[string]trackedUser{}, converged: make(chan struct{})}
	informers, err := cache.New(cfg, cache.Options{
		Scheme:            operator.Scheme(),
		DefaultNamespaces: map[string]cache.Config{namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{surgev1alpha1.LabelManagedBy: surgev1alpha1.LabelManagedByValue})},
		},
	})
	if err != nil {
		return nil, err
	}
	userInformer, err := informers.GetInformer(ctx, &surgev1alpha1.SurgeEndUser{})
	if err != nil {
		return nil, err
	}
	onUser := func(obj any) {
		if user, ok := obj.(*surgev1alpha1.SurgeEndUser); ok {
			t.update(user.Name, func(u *trackedUser) {
				u.ready = isConverged(user)
				u.hasSecret = u.hasSecret || !withSecrets
			})
		}
	}
	if _, err := userInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    onUser,
		UpdateFunc: func(_, obj any) { onUser(obj) },
	}); err != nil {
		return nil, err
	}
	secretInformer, err := informers.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return nil, err
	}
	if _, err := secretInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if secret, ok := obj.(*corev1.Secret); ok && secret.Annotations[surgev1alpha1.AnnotationEndUser] != "" {
				t.update(secret.Annotations[surgev1alpha1.AnnotationEndUser], func(u *trackedUser) { u.hasSecret = true })
			}
		},
	}); err != nil {
		return nil, err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("watching namespace %s: caches did not sync", namespace)
	}
	return t, nil
}

// isConverged is the convergence condition: Ready=True for the current
// generation, as kubectl wait and kstatus read it.
func isConverged(user *surgev1alpha1.SurgeEndUser) bool {
	ready := apimeta.FindStatusCondition(user.Status.Conditions, surgev1alpha1.ConditionReady)
	return ready != nil && ready.Status == metav1.ConditionTrue &&
		ready.ObservedGeneration == user.Generation && user.Status.ObservedGeneration == user.Generation
}

func (t *convergenceTracker) update(name string, change func(*trackedUser)) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	user := t.users[name]
	wasDone := user.done()
	change(&user)
	t.users[name] = user
	switch {
	case user.done() && !wasDone:
		t.done++
	case !user.done() && wasDone:
		t.done--
	}
	if t.done == t.expected && t.convergedAt.IsZero() {
		t.convergedAt = now
		close(t.converged)
	}
}

func (t *convergenceTracker) convergedCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

func (t *convergenceTracker) convergedTime() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.convergedAt
}
