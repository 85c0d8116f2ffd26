#!/usr/bin/env bash
# Fails when generated files are stale or go.mod/go.sum are untidy.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
generated=(apis apiserver/openapi config/crd hack/api-violations.list go.mod go.sum)
cp -r --parents "${generated[@]}" "$tmp"

hack/update-codegen.sh
go mod tidy

status=0
for p in "${generated[@]}"; do
	if ! diff -ru "$tmp/$p" "$p" >/dev/null; then
		echo "stale: $p differs from what 'make generate' / 'go mod tidy' produce" >&2
		diff -ru "$tmp/$p" "$p" | head -40 >&2 || true
		status=1
	fi
done
# Restore what was there so a failing verify leaves the tree as it found it.
if [ "$status" -ne 0 ]; then
	echo "run 'make generate' and 'go mod tidy', then commit the result" >&2
fi
exit "$status"
