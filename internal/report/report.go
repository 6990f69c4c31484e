// Package report is the only writer of the status of the operator's
// resources and the only recorder of their events. A reconcile changes the
// status of the resource it holds and queues its events on a Report; Write
// stores the status with one patch when it differs from the stored one,
// then records the events.
package report

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Object is a resource of one of the operator's kinds, whose status is an S.
type Object[S any] interface {
	client.Object
	// GetObjectMeta is the resource's own ObjectMeta, which a write's
	// answer refreshes.
	GetObjectMeta() metav1.Object
	GetStatus() *S
}

// Writer stores what reports tell.
type Writer struct {
	Client   client.StatusClient
	Recorder events.EventRecorder
}

// Report is what one reconcile tells of one resource: its status, changed in
// place on the resource, and its events, queued until the next Write.
type Report[S any, T Object[S]] struct {
	writer Writer
	object T
	// stored is the status as last read or written: the base of the next
	// write.
	stored S
	events []event
}

type event struct {
	eventType, reason, action, note string
}

// New starts the report of a reconcile of object, as it was read.
func New[S any, T Object[S]](writer Writer, object T) *Report[S, T] {
	r := &Report[S, T]{writer: writer, object: object}
	r.stored = r.copyStatus(object)
	return r
}

// Stored is the status as last read or written, before this reconcile's
// changes since.
func (r *Report[S, T]) Stored() S { return r.stored }

// Eventf queues an event about the resource, recorded by the next Write.
func (r *Report[S, T]) Eventf(eventType, reason, action, format string, args ...any) {
	r.events = append(r.events, event{eventType: eventType, reason: reason, action: action, note: fmt.Sprintf(format, args...)})
}

// Write patches the resource's status when it differs from the stored one,
// then records the queued events, whether the patch succeeded or not: they
// tell of what happened in Surge. The patch holds the status alone, without
// a resourceVersion: status is this reconcile's to write, and a newer spec
// gets a reconcile of its own.
func (r *Report[S, T]) Write(ctx context.Context) error {
	defer r.recordEvents()
	current := *r.object.GetStatus()
	if equality.Semantic.DeepEqual(r.stored, current) {
		return nil
	}
	// The base carries the current metadata, so that the patch holds the
	// status alone.
	base := r.object.DeepCopyObject().(T)
	*base.GetStatus() = r.stored
	written := r.object.DeepCopyObject().(T)
	if err := r.writer.Client.Status().Patch(ctx, written, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("recording status: %w", err)
	}
	*r.object.GetStatus() = *written.GetStatus()
	r.stored = r.copyStatus(written)
	// The answer carries the resource as stored now. A newer spec in it is
	// not the one this reconcile acts on, and must not be recorded as
	// observed: the resource keeps its generation and its resourceVersion,
	// so that a later metadata write conflicts and the newer spec gets a
	// reconcile of its own.
	if written.GetGeneration() == r.object.GetGeneration() {
		meta, ok := r.object.GetObjectMeta().(*metav1.ObjectMeta)
		writtenMeta, writtenOK := written.GetObjectMeta().(*metav1.ObjectMeta)
		if ok && writtenOK {
			*meta = *writtenMeta
		}
	}
	return nil
}

// copyStatus is a deep copy of object's status, which shares nothing with
// it: a later change of one must not show in the other.
func (r *Report[S, T]) copyStatus(object T) S {
	return *object.DeepCopyObject().(T).GetStatus()
}

// RecordEvents records the queued events of a resource whose status is no
// one's to write any more: its finalizer is gone.
func (r *Report[S, T]) RecordEvents() { r.recordEvents() }

func (r *Report[S, T]) recordEvents() {
	for _, e := range r.events {
		r.writer.Recorder.Eventf(r.object, nil, e.eventType, e.reason, e.action, "%s", e.note)
	}
	r.events = nil
}
