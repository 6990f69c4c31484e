package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func endUser(mutate ...func(*surgev1alpha1.SurgeEndUser)) *surgev1alpha1.SurgeEndUser {
	obj := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "ada", UID: "uid-ada", Generation: 2},
		Spec:       surgev1alpha1.SurgeEndUserSpec{AccountID: "acct_01j9a43avnfqzbjfch6pygv1td", FirstName: "Ada"},
		Status: surgev1alpha1.SurgeEndUserStatus{
			ObservedGeneration: 2,
			UserID:             "usr_01k6x7d4m0a9h2c5e8f1g3j6kq",
			Conditions: []metav1.Condition{{
				Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: surgev1alpha1.ReasonSynced,
				Message: "End user usr_01k6x7d4m0a9h2c5e8f1g3j6kq matches the spec", LastTransitionTime: metav1.NewTime(now.Add(-time.Hour)),
			}},
		},
	}
	for _, m := range mutate {
		m(obj)
	}
	return obj
}

func notReady(reason, message string, stalled bool) func(*surgev1alpha1.SurgeEndUser) {
	return func(o *surgev1alpha1.SurgeEndUser) {
		o.Status.Conditions = []metav1.Condition{{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: message}}
		if stalled {
			o.Status.Conditions = append(o.Status.Conditions, metav1.Condition{Type: surgev1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: message})
		}
	}
}

func TestDiagnose(t *testing.T) {
	deleting := metav1.NewTime(now.Add(-time.Minute))
	cases := []struct {
		name   string
		report *report
		want   []string
	}{
		{"Ready and up to date: nothing to say", &report{obj: endUser()}, nil},
		{
			"no status: the operator has not seen it",
			&report{obj: endUser(func(o *surgev1alpha1.SurgeEndUser) { o.Status = surgev1alpha1.SurgeEndUserStatus{} })},
			[]string{"has not written its status yet: is it running, and does it watch namespace billing"},
		},
		{
			"a change not yet concluded",
			&report{obj: endUser(func(o *surgev1alpha1.SurgeEndUser) { o.Generation = 3 })},
			[]string{"describe generation 2 of the spec, which is at 3"},
		},
		{
			"stalled: the reason, the message, what to do",
			&report{obj: endUser(notReady(surgev1alpha1.ReasonUserClaimed, "SurgeEndUser billing/grace manages usr_01k6x7d4m0a9h2c5e8f1g3j6kq", true))},
			[]string{"Ready is False with reason UserClaimed: SurgeEndUser billing/grace manages usr_01k6x7d4m0a9h2c5e8f1g3j6kq\nAnother SurgeEndUser, named in the message, manages this user; delete one of the two.\nIt is stalled"},
		},
		{
			"transient: no stall",
			&report{obj: endUser(notReady(surgev1alpha1.ReasonSurgeUnavailable, "surge get_user: connection refused", false))},
			[]string{"Ready is False with reason SurgeUnavailable: surge get_user: connection refused\nThe operator retries with backoff; check that Surge, or the proxy in front of it, answers."},
		},
		{
			"paused and deleted: the deletion waits",
			&report{obj: endUser(func(o *surgev1alpha1.SurgeEndUser) {
				o.Annotations = map[string]string{surgev1alpha1.AnnotationPaused: "true"}
				o.DeletionTimestamp = &deleting
				o.Generation = 3
			})},
			[]string{"it is being deleted", "the deletion waits for kubectl surge resume ada", "it is paused (annotation surge.app/paused"},
		},
		{
			"a project that is not Ready",
			&report{
				obj: endUser(notReady(credentials.ReasonAPIKeyUnreadable, "Secret billing/surge, the API key of SurgeProject billing/surge, does not exist", true)),
				project: &projectState{ref: "SurgeProject billing/surge", conditions: []metav1.Condition{{
					Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: credentials.ReasonAPIKeyUnreadable, Message: "Secret billing/surge does not exist",
				}}},
			},
			[]string{"Create the project's Secret with the key", "SurgeProject billing/surge is not Ready (APIKeySecretUnreadable): Secret billing/surge does not exist"},
		},
		{
			"a failing renewal while Ready",
			&report{obj: endUser(func(o *surgev1alpha1.SurgeEndUser) {
				o.Status.Conditions[0].Reason = surgev1alpha1.ReasonTokenRenewalFailing
				o.Status.Token = &surgev1alpha1.TokenStatus{SecretName: "ada-token", ExpiresAt: metav1.NewTime(now.Add(4 * time.Minute))}
			})},
			[]string{"minting a new token fails", "the token in Secret ada-token stays valid for 4m"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := diagnose(tc.report, now)
			text := strings.Join(got, "\n")
			if tc.want == nil && len(got) > 0 {
				t.Fatalf("diagnose = %q, want nothing", got)
			}
			for _, want := range tc.want {
				if !strings.Contains(text, want) {
					t.Errorf("diagnose =\n%s\nwant it to say %q", text, want)
				}
			}
			if stalled := apimeta.IsStatusConditionTrue(tc.report.obj.Status.Conditions, surgev1alpha1.ConditionStalled); stalled != strings.Contains(text, "It is stalled") {
				t.Errorf("diagnose =\n%s\nfor a resource whose Stalled is %t", text, stalled)
			}
		})
	}
}

func TestRenderShowsWhatCannotBeRead(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "ada-token", nil)
	r := &report{
		obj: endUser(func(o *surgev1alpha1.SurgeEndUser) {
			o.Spec.ProjectRef = &surgev1alpha1.ProjectReference{Kind: surgev1alpha1.KindSurgeProject, Name: "surge"}
			o.Spec.TokenSecret = &surgev1alpha1.TokenSecretSpec{Name: "ada-token"}
			o.Status.Token = &surgev1alpha1.TokenStatus{
				SecretName: "ada-token", ExpiresAt: metav1.NewTime(now.Add(9 * time.Minute)), RenewAt: metav1.NewTime(now.Add(4 * time.Minute)),
			}
		}),
		projectErr: apierrors.NewNotFound(schema.GroupResource{Group: "surge.app", Resource: "surgeprojects"}, "surge"),
		secretErr:  forbidden,
		events: []eventsv1.Event{{
			EventTime: metav1.NewMicroTime(now.Add(-2 * time.Minute)), Type: "Normal", Reason: "Created",
			Note:   "Created end user usr_01k6x7d4m0a9h2c5e8f1g3j6kq in Surge",
			Series: &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(now.Add(-time.Minute))},
		}},
	}
	var out bytes.Buffer
	if err := render(&out, r, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"SurgeEndUser:     billing/ada\n",
		"Ready:            True (Synced) for 60m\n",
		"Project:          SurgeProject billing/surge, which does not exist\n",
		"Token:            Secret ada-token, which cannot be read: secrets \"ada-token\" is forbidden",
		"token expires 2026-11-22T12:09:00Z (in 9m), renewal 2026-11-22T12:04:00Z (in 4m)",
		"  60s  Normal  Created (x3)  Created end user usr_01k6x7d4m0a9h2c5e8f1g3j6kq in Surge\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status printed\n%s\nwant it to hold %q", out.String(), want)
		}
	}
	if strings.Contains(out.String(), "Why not Ready") {
		t.Errorf("a Ready resource was explained:\n%s", out.String())
	}
}
