# Helpers the docker/ scripts share (sourced, not run): Compose v1 or v2, messages, the repo root.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

# The functions of functions.yaml: their Dockerfile targets, Compose services and image names
# (agentorch/<name>), in the manifest's order. shellcheck: the scripts that source this use them.
# shellcheck disable=SC2034
# >>> functions.yaml: function-lists (make manifest writes this part; do not edit it)
FUNCTION_TARGETS=(gateway orchestrator calculator search data_processor tavily)
FUNCTION_SERVICES=(model-gateway orchestrator calculator-agent search-agent data-processor-agent tavily-agent)
FUNCTION_IMAGES=(gateway orchestrator calculator search data-processor tavily)
# <<< functions.yaml: function-lists

die() {
  echo "error: $*" >&2
  exit 1
}

note() {
  echo "== $*" >&2
}

# Print the usage block: the comment lines at the top of the calling script, without '# '.
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

wants_help() {
  case "${1:-}" in -h | --help) usage; exit 0 ;; esac
}

# Compose as an array: `docker compose` (v2) when the plugin answers, else `docker-compose` (v1).
compose_cmd() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  else
    die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed (Debian: apt-get install docker-compose)"
  fi
}

# The env file Compose reads for `${...}`: COMPOSE_ENV_FILE (repo-relative or absolute), else .env.
env_file_path() {
  case "${COMPOSE_ENV_FILE:-.env}" in
    /*) echo "$COMPOSE_ENV_FILE" ;;
    *) echo "$REPO_ROOT/${COMPOSE_ENV_FILE:-.env}" ;;
  esac
}

# Print the value Compose interpolates for variable $1: the environment's when set (even
# empty), else the env file's last `NAME=value` line (quotes removed), else nothing. The
# scripts read TAG, BASE_IMAGE, GATEWAY_API_KEYS... this way, so `.env` means to them what it
# means to Compose.
env_value() {
  if [ -n "${!1+set}" ]; then
    printf '%s\n' "${!1}"
    return
  fi
  local file
  file="$(env_file_path)"
  [ -f "$file" ] || return 0
  sed -n -e "s/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}$1[[:space:]]*=[[:space:]]*//p" "$file" |
    tail -n 1 | sed -e 's/[[:space:]]*$//' -e "s/^'\(.*\)'\$/\1/" -e 's/^"\(.*\)"$/\1/'
}

# The image tag Compose uses: TAG from the environment or the env file, else latest.
image_tag() {
  local tag
  tag="$(env_value TAG)"
  echo "${tag:-latest}"
}

# Compose with the project's files: docker-compose.yml, plus the prod override when PROD=1,
# plus COMPOSE_EXTRA_FILES (space separated); COMPOSE_ENV_FILE (repo-relative) instead of .env.
compose() {
  local files=(-f "$REPO_ROOT/docker-compose.yml")
  [ "${PROD:-0}" = 1 ] && files+=(-f "$REPO_ROOT/docker-compose.prod.yml")
  local extra
  for extra in ${COMPOSE_EXTRA_FILES:-}; do files+=(-f "$extra"); done
  [ "${#COMPOSE[@]}" -gt 0 ] || compose_cmd
  local env_file=()
  [ -z "${COMPOSE_ENV_FILE:-}" ] || env_file=(--env-file "$(env_file_path)")
  "${COMPOSE[@]}" --project-directory "$REPO_ROOT" "${env_file[@]}" "${files[@]}" "$@"
}

COMPOSE=()

require_docker() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed (Debian: apt-get install docker.io; or run docker/docker-engine.sh)"
  docker info >/dev/null 2>&1 || die "the Docker engine is not running or not reachable (start it, or run docker/docker-engine.sh)"
}

# A pid file whose process is gone (a machine copied or stopped while dockerd ran) makes dockerd
# refuse to start ("pid file found"); its containerd leaves one too. Remove only stale ones.
clear_stale_pid() {
  local file="$1" name="$2" pid
  [ -f "$file" ] || return 0
  pid="$(tr -dc '0-9' <"$file")"
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    return 0
  fi
  note "removing stale $file (pid ${pid:-none} is not a running $name)"
  rm -f "$file"
}
