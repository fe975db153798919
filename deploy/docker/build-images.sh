#!/usr/bin/env bash
# Builds the container images from this checkout's release binaries (`make build` first):
#   allsweep-coordinator:VERSION  the coordinator, no libtorch (about 100 MB over the base)
#   allsweep-torch:TORCH          libtorch with CUDA from the project's PyPI torch wheel (.venv),
#                                 built once per torch version (about 3.7 GB)
#   allsweep-worker:VERSION       allsweep-worker over allsweep-torch
# VERSION is the workspace version; each image is also tagged :latest. No Rust toolchain or
# registry is needed at build time; the binaries need a glibc no newer than bookworm's.
#
#   deploy/docker/build-images.sh [--base IMAGE]
#     --base IMAGE   the Debian bookworm image to build on [default: debian:bookworm-slim;
#                    deploy/docker/base-image.sh makes allsweep-base:bookworm offline]
# DOCKER (default: docker) and DOCKER_HOST choose the engine; podman works as DOCKER=podman.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=debian:bookworm-slim
while (($#)); do
  case $1 in
    --base) base=$2; shift 2 ;;
    *) echo "build-images: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done
docker=${DOCKER:-docker}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
site=.venv/lib/python3.11/site-packages
for bin in allsweep allsweep-worker; do
  [[ -x target/release/$bin ]] || { echo "build-images: no target/release/$bin: run make build first" >&2; exit 1; }
done
[[ -d $site/torch/lib ]] || { echo "build-images: no torch in .venv: run make setup first" >&2; exit 1; }
torch=$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$site/torch/version.py")
torch_image=allsweep-torch:${torch/+/-}
stage=target/docker
rm -rf "$stage/coordinator" "$stage/worker"
mkdir -p "$stage/coordinator" "$stage/worker"

if ! "$docker" image inspect "$torch_image" >/dev/null 2>&1; then
  echo "build-images: $torch_image (libtorch $torch from .venv, once)" >&2
  rm -rf "$stage/torch"
  mkdir -p "$stage/torch/site-packages/torch"
  # Hard links: the 3.7 GB are not copied on disk, only sent to the engine.
  cp -al "$site/torch/lib" "$stage/torch/site-packages/torch/lib"
  cp -al "$site/nvidia" "$stage/torch/site-packages/nvidia"
  cp deploy/docker/Dockerfile.torch "$stage/torch/Dockerfile"
  "$docker" build -q --build-arg BASE="$base" --build-arg TORCH_VERSION="$torch" -t "$torch_image" "$stage/torch" >/dev/null
  rm -rf "$stage/torch"
fi

strip -o "$stage/coordinator/allsweep" target/release/allsweep
cp deploy/docker/healthcheck "$stage/coordinator/healthcheck"
cp deploy/docker/Dockerfile.coordinator "$stage/coordinator/Dockerfile"
strip -o "$stage/worker/allsweep-worker" target/release/allsweep-worker
cp deploy/docker/Dockerfile.worker "$stage/worker/Dockerfile"

"$docker" build -q --build-arg BASE="$base" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  -t "allsweep-coordinator:$version" -t allsweep-coordinator:latest "$stage/coordinator" >/dev/null
"$docker" build -q --build-arg TORCH_IMAGE="$torch_image" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  -t "allsweep-worker:$version" -t allsweep-worker:latest "$stage/worker" >/dev/null
echo "build-images: allsweep-coordinator:$version, allsweep-worker:$version (on $torch_image, base $base)" >&2
