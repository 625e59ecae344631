#!/usr/bin/env bash
# Check the machine and the repository before starting: Docker and Compose present and the
# engine running, the required files present, .env present (copy .env.docker), the scripts
# executable, the host ports free (GATEWAY_PORT, default 8585; ORCHESTRATOR_PORT, default 8080;
# from the environment or .env), and the compose files valid. Exit 1 on a problem.
#
# usage: docker/docker-validate.sh [--help]
set -uo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
problems=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*"; problems=$((problems + 1)); }
command -v docker >/dev/null && ok "docker installed" || bad "docker not installed (docker/docker-engine.sh installs it)"
docker info >/dev/null 2>&1 && ok "engine running" || bad "engine not running (docker/docker-engine.sh starts it)"
(compose_cmd && echo "${COMPOSE[*]}") >/dev/null 2>&1 && ok "compose: $(compose_cmd; echo "${COMPOSE[*]}")" || bad "neither docker compose nor docker-compose"
for file in Dockerfile .dockerignore docker-compose.yml docker-compose.prod.yml .env.docker constraints.txt; do
  [ -f "$REPO_ROOT/$file" ] && ok "$file" || bad "$file missing"
done
[ -f "$REPO_ROOT/.env" ] && ok ".env" || bad ".env missing: cp .env.docker .env (then fill in what you use)"
for script in "$REPO_ROOT"/docker/*.sh; do
  [ "$(basename "$script")" = lib.sh ] && continue
  [ -x "$script" ] || bad "$script not executable (chmod +x)"
done
ok "scripts executable"
gateway_port="$(env_value GATEWAY_PORT)" orchestrator_port="$(env_value ORCHESTRATOR_PORT)"
for entry in "GATEWAY_PORT=${gateway_port:-8585}" "ORCHESTRATOR_PORT=${orchestrator_port:-8080}"; do
  port="${entry#*=}"
  if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))==0)"; then ok "port $port free"; else bad "port $port in use (set ${entry%=*} in .env to another)"; fi
done
(compose config -q && PROD=1 compose config -q) >/dev/null 2>&1 && ok "compose files valid" || bad "compose files invalid (docker compose config says why)"
[ "$problems" = 0 ] || die "$problems problem(s)"
