package gitops_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// TestKstatusTakesAResourceWithoutStatusForCurrent pins the kstatus rule
// docs/gitops.md warns about: a resource the operator has not written status
// to yet reads as Current, while the Argo CD health check says Progressing.
func TestKstatusTakesAResourceWithoutStatusForCurrent(t *testing.T) {
	manifest, err := yaml.YAMLToJSON([]byte(`
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {name: ada, namespace: default, generation: 1}
spec: {accountID: acct_01j9a43avnfqzbjfch6pygv1td, firstName: Ada}
`))
	if err != nil {
		t.Fatal(err)
	}
	// Decoded as the API machinery decodes, with integers as int64.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(manifest); err != nil {
		t.Fatal(err)
	}
	result, err := status.Compute(obj)
	if err != nil {
		t.Fatal(err)
	}
	if result.Status != status.CurrentStatus {
		t.Errorf("kstatus reads a SurgeEndUser without status as %s; docs/gitops.md says Current", result.Status)
	}
	if health := argoCDHealth(t, obj.Object); health.Status != "Progressing" {
		t.Errorf("Argo CD health of a SurgeEndUser without status is %s, want Progressing", health.Status)
	}
}
