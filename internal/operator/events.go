package operator

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	// eventQueueLength bounds the Normal events waiting to be written; past
	// it they are dropped, as client-go's broadcaster drops past 1,000.
	eventQueueLength = 1000
	// eventWriters write events side by side, so that an API server that
	// answers slowly during a mass create does not fill the queue: one
	// writer dropped 6% of 10,000 Created events in make bench.
	eventWriters = 8
	// eventWriteAttempts and eventRetryDelay ride out a short outage of the
	// API server without holding the queue up for long.
	eventWriteAttempts = 5
	eventRetryDelay    = 2 * time.Second
)

// eventRecorder writes Normal events straight to the API server, and passes
// Warnings on to client-go's broadcaster. The broadcaster keeps every event
// it sent for 6 to 12 minutes, to count repeats into a series: a mass create
// of 10,000 users kept 10,000 Created events in memory. The operator's Normal
// events each name a remote user id, so two are never alike and no series
// could form; Warnings repeat while a failure lasts, and keep their series.
type eventRecorder struct {
	warnings           events.EventRecorder
	writer             client.Client
	scheme             *runtime.Scheme
	reportingComponent string
	reportingInstance  string
	queue              chan *eventsv1.Event
}

var _ events.EventRecorder = (*eventRecorder)(nil)

func newEventRecorder(warnings events.EventRecorder, writer client.Client, component string) *eventRecorder {
	hostname, _ := os.Hostname()
	return &eventRecorder{
		warnings:           warnings,
		writer:             writer,
		scheme:             writer.Scheme(),
		reportingComponent: component,
		reportingInstance:  component + "-" + hostname,
		queue:              make(chan *eventsv1.Event, eventQueueLength),
	}
}

// Eventf records an event about regarding; it never blocks.
func (r *eventRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if eventtype != corev1.EventTypeNormal {
		r.warnings.Eventf(regarding, related, eventtype, reason, action, note, args...)
		return
	}
	event, err := r.makeEvent(regarding, related, reason, action, fmt.Sprintf(note, args...))
	if err != nil {
		log.Log.WithName("events").Error(err, "Cannot record an event", "reason", reason)
		return
	}
	select {
	case r.queue <- event:
	default:
		log.Log.WithName("events").Info("Dropped an event: too many are waiting to be written", "reason", reason, "regarding", event.Regarding.Name)
	}
}

// makeEvent builds the event as client-go's recorder does.
func (r *eventRecorder) makeEvent(regarding, related runtime.Object, reason, action, note string) (*eventsv1.Event, error) {
	regardingRef, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		return nil, err
	}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		if relatedRef, err = reference.GetReference(r.scheme, related); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	namespace := regardingRef.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%v.%x", regardingRef.Name, now.UnixNano()),
			Namespace: namespace,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.reportingComponent,
		ReportingInstance:   r.reportingInstance,
		Action:              action,
		Reason:              reason,
		Regarding:           *regardingRef,
		Related:             relatedRef,
		Note:                note,
		Type:                corev1.EventTypeNormal,
	}, nil
}

// Start writes queued events until ctx ends. It runs on every replica, so
// that events recorded just before losing leadership are still written.
func (r *eventRecorder) Start(ctx context.Context) error {
	var writers sync.WaitGroup
	for range eventWriters {
		writers.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case event := <-r.queue:
					r.write(ctx, event)
				}
			}
		})
	}
	writers.Wait()
	return nil
}

// NeedLeaderElection is false: see Start.
func (r *eventRecorder) NeedLeaderElection() bool { return false }

func (r *eventRecorder) write(ctx context.Context, event *eventsv1.Event) {
	attempt := 0
	err := wait.PollUntilContextCancel(ctx, eventRetryDelay, true, func(ctx context.Context) (bool, error) {
		attempt++
		err := r.writer.Create(ctx, event.DeepCopy())
		switch {
		case err == nil || apierrors.IsAlreadyExists(err):
			return true, nil
		case attempt < eventWriteAttempts && isTransient(err):
			return false, nil
		default:
			return false, err
		}
	})
	if err != nil && ctx.Err() == nil {
		log.Log.WithName("events").Error(err, "Cannot write an event", "reason", event.Reason, "regarding", event.Regarding.Name)
	}
}

// isTransient says whether writing again may succeed: the API server was
// unreachable or overloaded, rather than refusing the event itself.
func isTransient(err error) bool {
	if _, refused := err.(apierrors.APIStatus); !refused {
		return true
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
}
