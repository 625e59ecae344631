#!/usr/bin/env bash
# Build the images, one per Dockerfile target, tagged agentorch/<name>:$TAG (TAG=latest):
# every function of functions.yaml (docker/lib.sh lists them), interactive, fakes.
# The base is python:3.11-slim, or the local stand-in docker/base-image.sh builds where no
# registry can be reached (BASE_IMAGE picks another). Prints how long each image took.
# TAG and BASE_IMAGE come from the environment, else from .env (COMPOSE_ENV_FILE), as Compose
# reads them: the images built are the ones `make start` runs.
#
# usage: docker/docker-build.sh [--help] [target ...]     (default: every target)
# env: TAG, BASE_IMAGE, DOCKER_BUILD_ARGS (extra arguments for every `docker build`)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker

ALL_TARGETS=("${FUNCTION_TARGETS[@]}" interactive fakes)  # the functions from functions.yaml (lib.sh)
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
  case " ${ALL_TARGETS[*]} " in *" $target "*) ;; *) die "unknown target '$target' (one of: ${ALL_TARGETS[*]})" ;; esac
done

wanted_base="$(env_value BASE_IMAGE)"
base="$(BASE_IMAGE="${wanted_base:-python:3.11-slim}" "$(dirname "$0")/base-image.sh")"
tag="$(image_tag)"
# The legacy builder unless BuildKit (buildx) is installed: it is what Debian's engine has.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

for target in "${targets[@]}"; do
  image="agentorch/${target//_/-}:$tag"
  started=$SECONDS
  log="$(mktemp)"
  # shellcheck disable=SC2086
  if ! docker build --target "$target" --build-arg BASE_IMAGE="$base" -t "$image" \
      ${DOCKER_BUILD_ARGS:-} "$REPO_ROOT" >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -f "$log"
    die "building $image failed (last lines above)"
  fi
  rm -f "$log"
  size="$(docker image inspect --format '{{.Size}}' "$image")"
  note "built $image on $base in $((SECONDS - started)) s ($((size / 1000000)) MB)"
done
