#!/usr/bin/env bash
# Regenerates the CRDs, RBAC, DeepCopy code, the API reference (docs/api.md),
# the test kit's copy of the CRDs (pkg/surgetest/crds), the chart's copies
# of CRDs, RBAC rules and alerts, and the chart's README.md, and fails when
# that changed anything: the committed copies were stale. The fresh output is
# left in place to be committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fingerprint() {
	find api config/crd/bases pkg/surgetest/crds config/rbac docs charts/surge-operator/templates charts/surge-operator/files charts/surge-operator/README.md -type f \( -name '*.go' -o -name '*.yaml' -o -path docs/api.md -o -path charts/surge-operator/README.md \) -print0 | sort -z | xargs -0 sha256sum
}

before="$(fingerprint)"
make --no-print-directory manifests generate api-docs chart chart-readme >/dev/null
after="$(fingerprint)"
if [[ "${before}" != "${after}" ]]; then
	echo "generated files were stale; they have been regenerated, commit them:" >&2
	diff <(echo "${before}") <(echo "${after}") >&2 || true
	exit 1
fi
