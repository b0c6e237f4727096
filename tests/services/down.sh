#!/usr/bin/env bash
# Stop exactly the services tests/services/up.sh started (by pid file, never by name).
set -euo pipefail
run=${EDGE_AGENT_SERVICES_DIR:-/tmp/edge-agent-services}
for name in moto kafka azurite; do
  pidfile="$run/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    # up.sh starts each with setsid: the pid leads its own process group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "services: stopped $name ($pid)"
  fi
  rm -f "$pidfile"
done
rm -f "$run/kafka.ready"
