#!/usr/bin/env bash
# Stop exactly the services tests/services/up.sh started: by the pid files in
# $EDGE_AGENT_SERVICES_DIR (default /tmp/edge-agent-services), never by process name. A pid file
# whose process has ended, or whose pid now belongs to another process, is only removed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/services/lib.sh
. "$here/lib.sh"
mkdir -p "$services_run"
exec 9>"$services_run/up.lock" # not while up.sh is starting them
command -v flock >/dev/null && flock 9
for name in moto kafka azurite; do
  stop "$name"
  rm -f "$services_run/$name.status"
done
rm -f "$services_run/env"
