#!/usr/bin/env bash
# Writes the whole installation of config/default (CRD, namespace, RBAC,
# Deployment, metrics Service) as one YAML file, with the manager's image set
# to IMAGE.
#
#   hack/build-installer.sh IMAGE OUTPUT
#
# IMAGE is name[:tag] or name@digest. kubectl's embedded kustomize has no
# `kustomize edit`, and the committed kustomization must not change, so the
# image is set by a throwaway overlay. It lives under bin/ because kustomize
# accepts only relative paths to its bases.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 IMAGE OUTPUT" >&2
	exit 2
fi
image="$1"
output="$2"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kubectl="${KUBECTL:-kubectl}"
if ! command -v "${kubectl}" >/dev/null; then
	echo "kubectl is needed to build the installation (set KUBECTL to its path)" >&2
	exit 1
fi

# Split IMAGE into the fields of a kustomize images entry. A colon before the
# last slash belongs to a registry port, not to a tag.
name="${image}"
tag=""
digest=""
if [[ "${image}" == *@* ]]; then
	name="${image%%@*}"
	digest="${image#*@}"
elif [[ "${image##*/}" == *:* ]]; then
	name="${image%:*}"
	tag="${image##*:}"
fi

mkdir -p "${repo_root}/bin"
overlay="$(mktemp -d "${repo_root}/bin/installer.XXXXXX")"
trap 'rm -rf "${overlay}"' EXIT
{
	echo "apiVersion: kustomize.config.k8s.io/v1beta1"
	echo "kind: Kustomization"
	echo "resources:"
	echo "- ../../config/default"
	echo "images:"
	echo "- name: controller"
	echo "  newName: \"${name}\""
	if [[ -n "${tag}" ]]; then
		echo "  newTag: \"${tag}\""
	fi
	if [[ -n "${digest}" ]]; then
		echo "  digest: \"${digest}\""
	fi
} >"${overlay}/kustomization.yaml"

# Built into the temporary directory first, so that a failed build never
# leaves a truncated installer behind.
"${kubectl}" kustomize "${overlay}" >"${overlay}/install.yaml"
mkdir -p "$(dirname "${output}")"
mv "${overlay}/install.yaml" "${output}"
