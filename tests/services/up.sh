#!/usr/bin/env bash
# Start the real services the tests talk to, on fixed loopback ports, installing what is missing
# (cached between runs). Idempotent: healthy services from an earlier run are reused.
#
#   moto server (S3, SQS, SNS, DynamoDB, CloudWatch Logs, STS, CloudWatch, RDS)  127.0.0.1:5000
#   Apache Kafka 4.x, one KRaft node (broker + controller), from Maven Central  127.0.0.1:9092
#   Azurite blob service (devstoreaccount1)                                     127.0.0.1:10000
#
# Writes $EDGE_AGENT_SERVICES_DIR/env (KEY=VALUE) for tests/services/mod.ts. With CI=true a
# service that cannot start fails this script; otherwise it is listed in SERVICES_UNAVAILABLE and
# its tests report as ignored with the reason.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${EDGE_AGENT_SERVICES_CACHE:-$HOME/.cache/edge-agent-services}
run=${EDGE_AGENT_SERVICES_DIR:-/tmp/edge-agent-services}
mkdir -p "$cache" "$run"
unavailable=()

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds or time runs out.
wait_for() {
  local name=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    if [ -f "$run/$name.pid" ] && ! kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then return 1; fi
    sleep 0.3
  done
}

running() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

fail() { # fail NAME REASON
  echo "services: $1 unavailable: $2" >&2
  if [ -f "$run/$1.log" ]; then tail -n 30 "$run/$1.log" >&2; fi
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  unavailable+=("$1: $2")
}

moto_ok() { curl -sf -o /dev/null "http://127.0.0.1:5000/moto-api/"; }
kafka_ok() { bash -c 'exec 3<>/dev/tcp/127.0.0.1/9092' && [ -f "$run/kafka.ready" ]; }
azurite_ok() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:10000/devstoreaccount1?comp=list" | grep -qE '^(200|403)$'; }

start_moto() {
  local t; t=$(now)
  if running moto && moto_ok; then echo "services: moto reused"; return; fi
  if ! command -v python3 >/dev/null; then fail moto "python3 not found"; return; fi
  if [ ! -x "$cache/moto-venv/bin/moto_server" ]; then
    python3 -m venv "$cache/moto-venv" &&
      "$cache/moto-venv/bin/pip" install -q "moto[server]==5.2.5" >"$run/moto-install.log" 2>&1 ||
      { fail moto "pip install moto[server] failed: $(tail -n 3 "$run/moto-install.log")"; return; }
  fi
  setsid "$cache/moto-venv/bin/moto_server" -H 127.0.0.1 -p 5000 >"$run/moto.log" 2>&1 </dev/null &
  echo $! >"$run/moto.pid"
  if wait_for moto 60 moto_ok; then echo "services: moto up in $(since "$t") s"; else fail moto "did not answer on 127.0.0.1:5000"; fi
}

start_kafka() {
  local t; t=$(now)
  if running kafka && kafka_ok; then echo "services: kafka reused"; return; fi
  if ! command -v java >/dev/null; then fail kafka "java not found"; return; fi
  local libs="$cache/kafka-libs"
  if [ ! -f "$libs/.complete" ]; then
    if ! command -v mvn >/dev/null; then fail kafka "mvn not found (needed to fetch the broker's jars)"; return; fi
    rm -rf "$libs"
    mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$libs" >"$run/kafka-install.log" 2>&1 ||
      { fail kafka "mvn dependency:copy-dependencies failed: $(tail -n 5 "$run/kafka-install.log")"; return; }
    touch "$libs/.complete"
  fi
  rm -rf "$run/kafka-data" "$run/kafka.ready"
  mkdir -p "$run/kafka-data"
  cat >"$run/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$run/kafka-data
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
  cat >"$run/log4j2.yaml" <<'EOF'
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
  local jvm=(java -Xmx512m -Xms256m -XX:+UseSerialGC -Dlog4j2.configurationFile="$run/log4j2.yaml" -cp "$libs/*")
  "${jvm[@]}" kafka.tools.StorageTool format -t "$("${jvm[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)" \
    -c "$run/server.properties" >"$run/kafka-format.log" 2>&1 ||
    { fail kafka "storage format failed: $(tail -n 5 "$run/kafka-format.log")"; return; }
  setsid "${jvm[@]}" kafka.Kafka "$run/server.properties" >"$run/kafka.log" 2>&1 </dev/null &
  echo $! >"$run/kafka.pid"
  # Ready when the server says it started (after the controller elected itself) and the port answers.
  if wait_for kafka 120 grep -q "Kafka Server started" "$run/kafka.log" &&
    wait_for kafka 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9092'; then
    touch "$run/kafka.ready"
    echo "services: kafka up in $(since "$t") s"
  else
    fail kafka "did not start on 127.0.0.1:9092"
  fi
}

start_azurite() {
  local t; t=$(now)
  if running azurite && azurite_ok; then echo "services: azurite reused"; return; fi
  if ! command -v npm >/dev/null; then fail azurite "npm not found"; return; fi
  if [ ! -x "$cache/azurite/node_modules/.bin/azurite-blob" ]; then
    npm install -s --no-audit --no-fund --prefix "$cache/azurite" azurite@3.37.0 >"$run/azurite-install.log" 2>&1 ||
      { fail azurite "npm install azurite failed: $(tail -n 3 "$run/azurite-install.log")"; return; }
  fi
  setsid "$cache/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort 10000 \
    --inMemoryPersistence --skipApiVersionCheck --loose >"$run/azurite.log" 2>&1 </dev/null &
  echo $! >"$run/azurite.pid"
  if wait_for azurite 60 azurite_ok; then echo "services: azurite up in $(since "$t") s"; else fail azurite "did not answer on 127.0.0.1:10000"; fi
}

total=$(now)
start_moto &
m=$!
start_azurite &
a=$!
start_kafka
wait $m || { [ "${CI:-}" = "true" ] && exit 1; }
wait $a || { [ "${CI:-}" = "true" ] && exit 1; }

# The sub-shells above cannot append to `unavailable`: re-check each service here.
unavailable=()
moto_ok || unavailable+=("moto: not answering (see $run/moto.log)")
kafka_ok || unavailable+=("kafka: not answering (see $run/kafka.log)")
azurite_ok || unavailable+=("azurite: not answering (see $run/azurite.log)")
if [ "${CI:-}" = "true" ] && [ ${#unavailable[@]} -gt 0 ]; then
  printf 'services: %s\n' "${unavailable[@]}" >&2
  exit 1
fi

key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
{
  echo "SERVICES_DIR=$run"
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:5000"
  echo "KAFKA_BROKERS=127.0.0.1:9092"
  echo "AZURITE_BLOB_URL=http://127.0.0.1:10000/devstoreaccount1"
  echo "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
  echo "SERVICES_UNAVAILABLE=$(IFS=';'; echo "${unavailable[*]:-}")"
} >"$run/env"
echo "services: ready in $(since "$total") s (env: $run/env)${unavailable:+; unavailable: ${unavailable[*]}}"
