#!/usr/bin/env bash
# Builds the kube-apiserver and etcd binaries that envtest runs, from the Go
# module proxy, because the usual setup-envtest download host is not reachable
# from every machine we build on. The binaries are kept in a per-user cache
# (keyed by version, like setup-envtest's store) so that a fresh clone reuses
# them, and linked into bin/k8s/<version>. Prints the directory to use as
# KUBEBUILDER_ASSETS.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
KEY="${K8S_VERSION}-${GOOS}-${GOARCH}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${SURGE_ENVTEST_CACHE:-${XDG_DATA_HOME:-${HOME}/.local/share}/surge-operator/envtest}/${KEY}"
LOCAL_DIR="${REPO_ROOT}/bin/k8s/${KEY}"

have_binaries() {
	[[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]
}

if ! have_binaries "${CACHE_DIR}"; then
	echo "building kube-apiserver and etcd ${K8S_VERSION} from source (one-off, several minutes)" >&2
	WORK="$(mktemp -d)"
	trap 'rm -rf "${WORK}"' EXIT
	cd "${WORK}"

	kube_mod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
	# k8s.io/kubernetes requires its staging modules at v0.0.0 and resolves them
	# through its own replace directives, which do not apply to a module that
	# depends on it; pin each to its published v0.x twin instead.
	staging_version="v0.${K8S_VERSION#1.}"
	mapfile -t staging < <(awk '$2 == "v0.0.0" {print $1}' "${kube_mod}" | sort -u)

	{
		echo "module envtestbinaries"
		echo
		echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')"
		echo
		echo "require k8s.io/kubernetes v${K8S_VERSION}"
		echo
		for module in "${staging[@]}"; do
			echo "replace ${module} => ${module} ${staging_version}"
		done
	} >go.mod
	cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
GO
	GOFLAGS=-mod=mod go mod tidy -e >/dev/null

	minor="${K8S_VERSION#*.}"
	minor="${minor%%.*}"
	ldflags=""
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X ${pkg}.gitVersion=v${K8S_VERSION}"
		ldflags+=" -X ${pkg}.gitMajor=${K8S_VERSION%%.*}"
		ldflags+=" -X ${pkg}.gitMinor=${minor}"
		ldflags+=" -X ${pkg}.gitTreeState=clean"
	done

	mkdir -p "${WORK}/out"
	CGO_ENABLED=0 go build -trimpath -tags tools -ldflags "${ldflags}" -o "${WORK}/out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
	CGO_ENABLED=0 go build -trimpath -o "${WORK}/out/etcd" go.etcd.io/etcd/server/v3

	mkdir -p "${CACHE_DIR}"
	mv "${WORK}/out/kube-apiserver" "${WORK}/out/etcd" "${CACHE_DIR}/"
fi

mkdir -p "${LOCAL_DIR}"
for binary in kube-apiserver etcd; do
	ln -sf "${CACHE_DIR}/${binary}" "${LOCAL_DIR}/${binary}"
done
if ! [[ -e "${LOCAL_DIR}/kubectl" ]] && command -v kubectl >/dev/null; then
	ln -sf "$(command -v kubectl)" "${LOCAL_DIR}/kubectl"
fi
echo "${LOCAL_DIR}"
