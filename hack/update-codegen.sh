#!/usr/bin/env bash
# Regenerates every generated file: deepcopy, OpenAPI definitions and model
# names, and the CRD manifests. The generators are pinned as go.mod tools.
set -euo pipefail
cd "$(dirname "$0")/.."

header=hack/boilerplate.go.txt
apis=./apis/skiff/v1alpha1

# Packages whose types the apiserver serves or embeds; their OpenAPI
# definitions are generated into apiserver/openapi. They already carry model
# names, so they are read-only here.
upstream=(
	k8s.io/apimachinery/pkg/apis/meta/v1
	k8s.io/apimachinery/pkg/runtime
	k8s.io/apimachinery/pkg/version
	k8s.io/apimachinery/pkg/api/resource
	k8s.io/apimachinery/pkg/util/intstr
	k8s.io/api/core/v1
	k8s.io/api/coordination/v1
	k8s.io/api/autoscaling/v1
	k8s.io/api/rbac/v1
	k8s.io/api/authorization/v1
)
readonly_flags=()
for p in "${upstream[@]}"; do readonly_flags+=(--readonly-pkg "$p"); done

go tool deepcopy-gen --go-header-file "$header" --output-file zz_generated.deepcopy.go "$apis"

go tool openapi-gen --go-header-file "$header" \
	--output-dir apiserver/openapi --output-pkg skiff.dev/skiff/apiserver/openapi \
	--output-file zz_generated.openapi.go --output-model-name-file zz_generated.model_name.go \
	--report-filename hack/api-violations.list \
	"${readonly_flags[@]}" "$apis" "${upstream[@]}"

go tool controller-gen crd paths="$apis/..." output:crd:artifacts:config=config/crd
# Binding is a subresource body, not a stored kind: it has no CRD.
rm -f config/crd/skiff.dev_bindings.yaml
