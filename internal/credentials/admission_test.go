package credentials

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

func TestAdmit(t *testing.T) {
	namespaced := project{ref: Ref{Kind: surgev1alpha1.KindSurgeProject, Namespace: "team-a", Name: "surge"}}
	cluster := project{ref: Ref{Kind: surgev1alpha1.KindClusterSurgeProject, Name: "shared"}}
	withAccounts := func(p project, accounts ...string) project { p.accounts = accounts; return p }
	withNamespaces := func(p project, namespaces ...string) project { p.namespaces = namespaces; return p }
	withSelector := func(p project, selector *metav1.LabelSelector) project { p.selector = selector; return p }
	deleting := func(p project) project { p.deleting = true; return p }
	tenant := &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "true"}}
	namespace := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}

	for _, tc := range []struct {
		name      string
		project   project
		namespace *corev1.Namespace
		account   string
		// leaving is set for a SurgeEndUser being deleted.
		leaving bool
		want    string
	}{
		{"a SurgeProject serves its own namespace", namespaced, namespace("team-a", nil), "acct_1", false, ""},
		{"a SurgeProject serves no other namespace", namespaced, namespace("team-b", nil), "acct_1", false, ReasonNamespaceNotAllowed},
		{"an empty account list allows every account", namespaced, namespace("team-a", nil), "acct_9", false, ""},
		{"a listed account", withAccounts(namespaced, "acct_1", "acct_2"), namespace("team-a", nil), "acct_2", false, ""},
		{"an unlisted account", withAccounts(namespaced, "acct_1"), namespace("team-a", nil), "acct_2", false, ReasonAccountNotAllowed},
		{"a ClusterSurgeProject without boundary serves every namespace", cluster, namespace("anyone", nil), "acct_1", false, ""},
		{"a listed namespace", withNamespaces(cluster, "team-a"), namespace("team-a", nil), "acct_1", false, ""},
		{"an unlisted namespace", withNamespaces(cluster, "team-a"), namespace("team-b", nil), "acct_1", false, ReasonNamespaceNotAllowed},
		{"a selected namespace", withSelector(cluster, tenant), namespace("team-b", map[string]string{"tenant": "true"}), "acct_1", false, ""},
		{"a namespace the selector leaves out", withSelector(cluster, tenant), namespace("team-b", map[string]string{"tenant": "false"}), "acct_1", false, ReasonNamespaceNotAllowed},
		{"listed or selected", withSelector(withNamespaces(cluster, "team-a"), tenant), namespace("team-a", nil), "acct_1", false, ""},
		{"the namespace boundary comes before accounts", withAccounts(withNamespaces(cluster, "team-a"), "acct_1"), namespace("team-b", nil), "acct_2", false, ReasonNamespaceNotAllowed},
		{"a project being deleted serves no new work", deleting(namespaced), namespace("team-a", nil), "acct_1", false, ReasonProjectDeleting},
		{"a project being deleted serves the deletion of its end users", deleting(namespaced), namespace("team-a", nil), "acct_1", true, ""},
		{"an allowed namespace with an unlisted account", withAccounts(withNamespaces(cluster, "team-a"), "acct_1"), namespace("team-a", nil), "acct_2", false, ReasonAccountNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &surgev1alpha1.SurgeEndUser{Spec: surgev1alpha1.SurgeEndUserSpec{AccountID: tc.account}}
			if tc.leaving {
				obj.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
			}
			refusal := admit(tc.project, tc.namespace, obj)
			got := ""
			if refusal != nil {
				got = refusal.Reason
			}
			if got != tc.want {
				t.Errorf("admit = %q (%v), want %q", got, refusal, tc.want)
			}
		})
	}
}
