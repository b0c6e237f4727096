# shellcheck shell=bash disable=SC2034
# Shared by up.sh and down.sh: where things live, which ports, and how a service started by up.sh
# is recognised (pid file) and stopped. Sourced, not run.

services_cache=${EDGE_AGENT_SERVICES_CACHE:-$HOME/.cache/edge-agent-services}
services_run=${EDGE_AGENT_SERVICES_DIR:-/tmp/edge-agent-services}
# Fixed ports; the overrides exist for a second, separate set of services on the same host.
moto_port=${EDGE_AGENT_MOTO_PORT:-5000}
kafka_port=${EDGE_AGENT_KAFKA_PORT:-9092}
kafka_controller_port=${EDGE_AGENT_KAFKA_CONTROLLER_PORT:-9093}
azurite_port=${EDGE_AGENT_AZURITE_PORT:-10000}

# alive NAME: NAME.pid names a running process, and it is the one up.sh started. The pid file
# holds the pid and the process's start time, so a reused pid is never taken for ours.
alive() {
  local pid="" started=""
  { read -r pid && read -r started; } 2>/dev/null <"$services_run/$1.pid" || return 1
  [ -n "$pid" ] && [ "$(ps -o lstart= -p "$pid" 2>/dev/null)" = "$started" ] &&
    [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]] # a zombie (not yet reaped) has ended
}

# stop NAME: end the process up.sh started for NAME (TERM, then KILL after 20 s) and forget it.
# up.sh starts each service with setsid, so its pid is also its process group: children go too.
# A pid file without a start time whose pid runs is left alone: it is not ours to judge.
stop() {
  local pid file="$services_run/$1.pid"
  if [ -f "$file" ] && [ "$(wc -l <"$file")" -lt 2 ] && kill -0 "$(head -n 1 "$file")" 2>/dev/null; then
    echo "services: $1: $file names running pid $(head -n 1 "$file") but no start time" \
      "(an older up.sh?): not stopped, not removed" >&2
    return
  fi
  if alive "$1"; then
    pid=$(head -n 1 "$services_run/$1.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      alive "$1" || break
      sleep 0.1
    done
    if alive "$1"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    echo "services: $1: stopped (pid $pid)"
  fi
  rm -f "$services_run/$1.pid" "$services_run/$1.id"
}
