#!/usr/bin/env bash
# The system tests: allsweep on the engines people run it on, for real, on this machine.
#   k8s         every kustomize overlay through a strict schema check and the project's own checks
#   containers  both images built, the compose stack running a sweep while workers scale 1 -> 3 -> 1
#   slurm       a real Slurm cluster (two nodes on this host) running the worker job array
#   hosts       coordinator, Postgres and workers in separate network namespaces, cut and healed
# Each installs what it needs (Debian packages, a PyPI validator) and cleans up after itself.
# Root only (daemons, namespaces, iptables). Needs the release binaries (make build).
#
#   tests/system/run.sh [TEST...]     default: all, in the order above
set -uo pipefail
cd "$(dirname "$0")" || exit 2
tests=("$@")
((${#tests[@]})) || tests=(k8s containers slurm hosts)
((EUID == 0)) || { echo "system tests: run as root (they start daemons and make network namespaces)" >&2; exit 1; }
failed=()
summary=()
for t in "${tests[@]}"; do
  [[ -x ./$t.sh ]] || { echo "system tests: no test $t (tests/system/$t.sh)" >&2; exit 2; }
  echo "=== system test $t" >&2
  began=$SECONDS
  if ./"$t".sh; then
    summary+=("ok      $t ($((SECONDS - began)) s)")
  else
    summary+=("FAILED  $t ($((SECONDS - began)) s)")
    failed+=("$t")
  fi
done
echo "=== system tests" >&2
printf '  %s\n' "${summary[@]}" >&2
((${#failed[@]} == 0)) || { echo "system tests failed: ${failed[*]}" >&2; exit 1; }
