#!/usr/bin/env bash
# `deno task test`: the tools the tests need (installed when missing), format, lint and type
# checks, the test services, then every test under tests/.
# Extra arguments go to `deno test` (e.g. `deno task test tests/config/`).
# JUNIT_PATH (optional) receives a JUnit XML report; .ci/run reads it for its final count.
# EDGE_AGENT_NO_INSTALL=1 only lists what is missing instead of installing it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages some tests use, installed only when missing (apt-get update once, then).
need=()
# packaging: shellcheck (install.sh), systemd-analyze (the unit), unzip (the Lambda zip).
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
# The test services: Kafka needs Java 17+ and Maven, moto a Python venv (tests/services/up.sh).
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# The generate/receive dashboard test drives headless Chromium (tests/_cdp.ts).
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo=(sudo -n)
  if [ -n "${EDGE_AGENT_NO_INSTALL:-}" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "== missing (tests that use them will fail): ${need[*]}" >&2
  else
    echo "== installing ${need[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      "${need[@]}" >/dev/null
  fi
fi

echo "== deno fmt --check"; deno fmt --check
echo "== deno lint"; deno lint
echo "== deno check"; deno check main.ts tests/

if [ -f tests/services/up.sh ]; then
  echo "== test services"
  bash tests/services/up.sh
fi

junit=()
[ -n "${JUNIT_PATH:-}" ] && junit=(--junit-path="$JUNIT_PATH")
echo "== deno test"
paths=("$@")
[ ${#paths[@]} -eq 0 ] && paths=(tests/)
exec deno test -A --no-check "${junit[@]}" "${paths[@]}"
