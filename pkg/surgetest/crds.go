package surgetest

import (
	"embed"
	"fmt"
	"io/fs"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crdFiles is a copy of config/crd/bases, which Go cannot embed from here;
// make manifests writes it, and make test fails when it is stale.
//
//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs returns the operator's CustomResourceDefinitions (SurgeEndUser,
// SurgeProject, ClusterSurgeProject), exactly as the operator's release
// installs them, for envtest.Environment.CRDs. Each call returns new
// objects, so that envtest may change them.
func CRDs() []*apiextensionsv1.CustomResourceDefinition {
	names, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		panic(err)
	}
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(names))
	for _, name := range names {
		raw, err := crdFiles.ReadFile(name)
		if err != nil {
			panic(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(raw, crd); err != nil {
			panic(fmt.Sprintf("surgetest: the embedded %s is not a CustomResourceDefinition: %v", name, err))
		}
		crds = append(crds, crd)
	}
	return crds
}
