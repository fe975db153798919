#!/usr/bin/env bash
# Installs what the dashboard and metrics tests drive for real, from Debian's packages:
# headless Chromium with its WebDriver (chromium, chromium-driver) and a Prometheus server
# (prometheus). Idempotent: does nothing when all three are on the machine. Their daemons
# are never started here; the tests start their own on free ports.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v prometheus >/dev/null || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
echo "setup-web-tests: installing ${need[*]} from Debian's packages (once)" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-web-tests: installing packages needs root; run as root or install: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A package's service is never started here (no init system runs them; the tests start their own).
[ -e /usr/sbin/policy-rc.d ] || { printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && trap "rm -f /usr/sbin/policy-rc.d" EXIT; }
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
