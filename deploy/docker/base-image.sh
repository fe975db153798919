#!/usr/bin/env bash
# Makes a Debian bookworm base image without a registry: debootstrap (minbase) into a folder,
# packed into a tarball cached under $ALLSWEEP_CACHE (default ~/.cache/allsweep), then
# `docker import`ed. For air-gapped build hosts, and for this project's container tests.
#
#   deploy/docker/base-image.sh [NAME] [--include PKG,PKG]   NAME defaults to allsweep-base:bookworm
# Needs root (debootstrap) and Debian's debootstrap package. DOCKER as in build-images.sh.
set -euo pipefail
name=allsweep-base:bookworm
include=
while (($#)); do
  case $1 in
    --include) include=$2; shift 2 ;;
    -*) echo "base-image: unknown argument $1" >&2; exit 2 ;;
    *) name=$1; shift ;;
  esac
done
docker=${DOCKER:-docker}
if "$docker" image inspect "$name" >/dev/null 2>&1; then
  exit 0
fi
cache=${ALLSWEEP_CACHE:-$HOME/.cache/allsweep}
tarball=$cache/bookworm-minbase${include:+-${include//,/-}}.tar
mkdir -p "$cache"
if [[ ! -s $tarball ]]; then
  command -v debootstrap >/dev/null || { echo "base-image: install Debian's debootstrap" >&2; exit 1; }
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "base-image: debootstrap bookworm minbase${include:+ with $include} (about 75 s, once)" >&2
  debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$root" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
    || { echo "base-image: debootstrap failed; see $cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
"$docker" import -c 'CMD ["/bin/bash"]' "$tarball" "$name" >/dev/null
echo "base-image: $name from $tarball" >&2
