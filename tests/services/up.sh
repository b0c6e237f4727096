#!/usr/bin/env bash
# shellcheck disable=SC2016 # the bash -c scripts below take their arguments as $0 and $@
# Start the real servers the tests talk to, on fixed loopback ports, installing what is missing
# into a cache kept between runs. Idempotent: a healthy service from an earlier run is reused.
#
#   moto server 5.2.5 (S3, SQS, SNS, DynamoDB, CloudWatch Logs, STS, CloudWatch, RDS)  127.0.0.1:5000
#   Apache Kafka 4.x, one KRaft node (broker + controller), jars from Maven Central   127.0.0.1:9092
#   Azurite 3.37.0 blob service, in memory, account devstoreaccount1                  127.0.0.1:10000
#
# Cache: $EDGE_AGENT_SERVICES_CACHE (default ~/.cache/edge-agent-services). Pid files, logs and the
# env file (KEY=VALUE lines read by tests/services/mod.ts): $EDGE_AGENT_SERVICES_DIR (default
# /tmp/edge-agent-services). With CI=true a service that cannot start makes this script fail with
# the reason and its log's tail; otherwise it is listed in SERVICES_UNAVAILABLE and its tests are
# reported as ignored. Stop everything with tests/services/down.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/services/lib.sh
. "$here/lib.sh"
cache=$services_cache
run=$services_run
ci=false
case "${CI:-}" in true | 1) ci=true ;; esac

moto_version=5.2.5
azurite_version=3.37.0
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
kafka_libs="$cache/kafka-$kafka_version-$(cksum <"$here/kafka/pom.xml" | cut -d' ' -f1)"

mkdir -p "$cache" "$run"
# One up.sh at a time per run dir (two test runs starting together would race for the ports).
# The services must not inherit the lock: each is started with 9>&-.
exec 9>"$run/up.lock"
command -v flock >/dev/null && flock 9

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# unavailable NAME REASON [LOG]: record why NAME cannot be used and show the end of LOG.
unavailable() {
  local reason=${2//[$'\n;']/ }
  if [ "$ci" = true ]; then echo "services: $1: FAILED: $reason" >&2; else
    echo "services: $1: unavailable, its tests will be ignored: $reason" >&2
  fi
  if [ -s "${3:-}" ]; then
    echo "--- last lines of $3 ---" >&2
    tail -n 30 "$3" >&2
  fi
  echo "$1: $reason" >"$run/$1.status"
}

# wait_until NAME SECONDS CHECK...: poll CHECK until it passes; give up when NAME's process ends.
wait_until() {
  local name=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name" || [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.2
  done
}

# launch NAME CMD...: run CMD in a new session (so stop can end it with its children), output to
# NAME.log; record its pid and start time in NAME.pid.
launch() {
  local name=$1 pid=""
  shift
  rm -f "$run/$name.pid" "$run/$name.pid.new"
  setsid bash -c 'echo $$ >"$0.new" && exec "$@"' "$run/$name.pid" "$@" \
    </dev/null >"$run/$name.log" 2>&1 9>&- &
  for _ in $(seq 1 250); do
    [ -s "$run/$name.pid.new" ] && pid=$(cat "$run/$name.pid.new") && [ -n "$pid" ] && break
    sleep 0.02
  done
  [ -n "$pid" ] || return 1
  printf '%s\n%s\n' "$pid" "$(ps -o lstart= -p "$pid")" >"$run/$name.pid"
  rm -f "$run/$name.pid.new"
}

port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }

# --- health checks: a real request each --------------------------------------------------------
moto_ok() { curl -sf -m 2 -o /dev/null "http://127.0.0.1:$moto_port/moto-api/"; }
# Kafka ApiVersions v0 (key 18, correlation id 7, client "edge"): the broker only serves requests
# once it has joined its own KRaft quorum and been unfenced.
kafka_ok() {
  local reply
  reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" &&
    printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x07\x00\x04edge" >&3 &&
    head -c 10 <&3 | od -An -tx1' "$kafka_port" 2>/dev/null | tr -d ' \n') || return 1
  [ "${reply:8:12}" = 000000070000 ] # correlation id 7, error code 0
}
azurite_ok() {
  curl -s -m 2 -o /dev/null -D - "http://127.0.0.1:$azurite_port/devstoreaccount1?comp=list" |
    grep -qi '^server: Azurite-Blob'
}

# --- moto ---------------------------------------------------------------------------------------
moto_id() { echo "moto $moto_version port $moto_port, atomic DynamoDB writes"; }
moto_start() {
  local venv="$cache/moto-$moto_version"
  command -v python3 >/dev/null || { unavailable moto "python3 not found"; return 1; }
  if [ ! -f "$venv/.complete" ]; then
    local t; t=$(now)
    rm -rf "$venv"
    { python3 -m venv "$venv" &&
      "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$moto_version"; } \
      >"$run/moto-install.log" 2>&1 ||
      { unavailable moto "pip install moto[server]==$moto_version failed" "$run/moto-install.log"; return 1; }
    touch "$venv/.complete"
    echo "services: moto: installed moto[server]==$moto_version into $venv ($(since "$t"))"
  fi
  # moto_server with DynamoDB's conditional writes made atomic (see moto_server.py).
  launch moto "$venv/bin/python" "$here/moto_server.py" -H 127.0.0.1 -p "$moto_port"
}

# --- Kafka --------------------------------------------------------------------------------------
kafka_id() { echo "kafka $kafka_libs ports $kafka_port $kafka_controller_port"; }
kafka_start() {
  local major dir="$run/kafka" cluster_id
  command -v java >/dev/null || { unavailable kafka "java not found (Kafka 4 needs Java 17+)"; return 1; }
  major=$(java -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
  [ "${major:-0}" -ge 17 ] || { unavailable kafka "Kafka 4 needs Java 17+, found Java ${major:-?}"; return 1; }
  if port_open "$kafka_controller_port"; then
    unavailable kafka "port 127.0.0.1:$kafka_controller_port (controller) is taken by another program"
    return 1
  fi
  if [ ! -f "$kafka_libs/.complete" ]; then
    local t; t=$(now)
    command -v mvn >/dev/null || { unavailable kafka "mvn not found (it fetches the broker's jars)"; return 1; }
    rm -rf "$kafka_libs"
    mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$kafka_libs" >"$run/kafka-install.log" 2>&1 ||
      { unavailable kafka "mvn dependency:copy-dependencies failed" "$run/kafka-install.log"; return 1; }
    touch "$kafka_libs/.complete"
    echo "services: kafka: fetched Kafka $kafka_version jars into $kafka_libs ($(since "$t"))"
  fi
  # A fresh, empty broker on every start: format its storage with a new cluster id (a random
  # 16-byte UUID in URL-safe base64, as `kafka-storage random-uuid` prints; not starting with '-').
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
EOF
  cat >"$dir/log4j2.yaml" <<'EOF'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
EOF
  local jvm=(java -Xmx512m -Xms256m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError
    "-Dlog4j2.configurationFile=$dir/log4j2.yaml" -cp "$kafka_libs/*")
  cluster_id=-
  while [ "${cluster_id:0:1}" = - ]; do
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    >"$run/kafka-format.log" 2>&1 ||
    { unavailable kafka "kafka-storage format failed" "$run/kafka-format.log"; return 1; }
  launch kafka "${jvm[@]}" kafka.Kafka "$dir/server.properties"
}

# --- Azurite ------------------------------------------------------------------------------------
azurite_id() { echo "azurite $azurite_version port $azurite_port"; }
azurite_start() {
  local dir="$cache/azurite-$azurite_version"
  command -v node >/dev/null || { unavailable azurite "node not found"; return 1; }
  if [ ! -x "$dir/node_modules/.bin/azurite-blob" ]; then
    local t; t=$(now)
    command -v npm >/dev/null || { unavailable azurite "npm not found"; return 1; }
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    npm install --prefix "$dir.tmp" --no-audit --no-fund --loglevel=error \
      "azurite@$azurite_version" >"$run/azurite-install.log" 2>&1 ||
      { unavailable azurite "npm install azurite@$azurite_version failed" "$run/azurite-install.log"; return 1; }
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    echo "services: azurite: installed azurite@$azurite_version into $dir ($(since "$t"))"
  fi
  launch azurite "$dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
    --blobPort "$azurite_port" --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry
}

# service NAME PORT TIMEOUT: reuse NAME if it is ours, the same version and healthy; otherwise
# install and start it and wait until it answers. Writes NAME.status: "ok" or the reason.
service() {
  local name=$1 port=$2 timeout=$3 t id
  t=$(now)
  id=$("${name}_id")
  rm -f "$run/$name.status"
  if alive "$name" && [ "$(cat "$run/$name.id" 2>/dev/null)" = "$id" ] && "${name}_ok"; then
    echo "services: $name: reused, answering on 127.0.0.1:$port ($(since "$t"))"
    echo ok >"$run/$name.status"
    return
  fi
  stop "$name" # ours but stale, another version or not answering
  if "${name}_ok"; then
    echo "services: $name: WARNING: 127.0.0.1:$port answers but was not started by this up.sh" \
      "(no usable pid file in $run); using it" >&2
    echo ok >"$run/$name.status"
    return
  fi
  if port_open "$port"; then
    unavailable "$name" "port 127.0.0.1:$port is taken by another program"
    return
  fi
  "${name}_start" || {
    [ -f "$run/$name.status" ] || unavailable "$name" "could not start" "$run/$name.log"
    return
  }
  echo "$id" >"$run/$name.id"
  if wait_until "$name" "$timeout" "${name}_ok"; then
    echo "services: $name: started, answering on 127.0.0.1:$port ($(since "$t"))"
    echo ok >"$run/$name.status"
  elif alive "$name"; then
    unavailable "$name" "no answer on 127.0.0.1:$port after ${timeout} s" "$run/$name.log"
  else
    unavailable "$name" "exited before answering on 127.0.0.1:$port" "$run/$name.log"
  fi
}

total=$(now)
pids=()
service moto "$moto_port" 60 &
pids+=($!)
service kafka "$kafka_port" 120 &
pids+=($!)
service azurite "$azurite_port" 60 &
pids+=($!)
for pid in "${pids[@]}"; do wait "$pid" || true; done

missing=()
for name in moto kafka azurite; do
  status=$(cat "$run/$name.status" 2>/dev/null || echo "$name: up.sh did not finish")
  [ "$status" = ok ] || missing+=("$status")
done

key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
blob="http://127.0.0.1:$azurite_port/devstoreaccount1"
cat >"$run/env.new" <<EOF
SERVICES_DIR=$run
AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
KAFKA_BROKERS=127.0.0.1:$kafka_port
AZURITE_BLOB_URL=$blob
AZURE_STORAGE_ACCOUNT=devstoreaccount1
AZURE_STORAGE_KEY=$key
AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=$blob;
MOTO_LOG=$run/moto.log
KAFKA_LOG=$run/kafka.log
AZURITE_LOG=$run/azurite.log
SERVICES_UNAVAILABLE=$(IFS=';' && echo "${missing[*]}")
EOF
mv "$run/env.new" "$run/env"

if [ ${#missing[@]} -gt 0 ]; then
  echo "services: ready in $(since "$total"), unavailable: $(printf '%s; ' "${missing[@]}")(env: $run/env)"
  if [ "$ci" = true ]; then
    echo "services: CI=true: every service must start" >&2
    exit 1
  fi
else
  echo "services: all ready in $(since "$total") (env: $run/env)"
fi
