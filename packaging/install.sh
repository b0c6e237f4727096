#!/usr/bin/env bash
# install.sh: install or upgrade edge-agent as a systemd service (edge-agent@<mode>).
#
# Re-running upgrades in place: the binary and unit are replaced, configs and credentials are
# kept, the service is restarted. See --help. Everything is non-interactive with flags; prompts
# appear only on a terminal, and never with --yes.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=install.sh

usage() {
  cat <<'EOF'
Usage: install.sh [options]

Installs:
  /usr/local/bin/edge-agent                            the binary (--binary)
  /usr/local/lib/systemd/system/edge-agent@.service    the unit, one instance per mode
  /usr/local/lib/sysusers.d/edge-agent.conf            the service user (systemd-sysusers)
  /etc/edge-agent/<mode>.yaml                          config, kept when present (--config)
  /etc/edge-agent/credentials/                         systemd credentials (--credential)
  /etc/systemd/system/edge-agent@.service.d/           drop-ins written by this script
  /var/lib/edge-agent/                                 state (StateDirectory=)
then validates each config with `edge-agent validate`, enables and (re)starts edge-agent@<mode>.

Options:
  --binary FILE        the edge-agent binary (default: ./edge-agent beside this script, else
                       ../dist/edge-agent-<host target>)
  --mode MODE          mode to run as edge-agent@MODE; repeatable (default: stream)
  --config FILE        config for the mode(s); replaces an existing one (kept as .yaml.old).
                       Without it an existing config is kept, else `edge-agent example` is used.
  --user NAME          service user (default: edge-agent)
  --credential NAME=FILE
                       store FILE's contents as systemd credential NAME, read by the config as
                       ${credential:NAME}; repeatable. Encrypted with systemd-creds (bound to
                       this host) when available, else a 0600 root-owned file for LoadCredential=.
  --credential-mode auto|encrypted|plain
                       default auto: encrypted unless DESTDIR is set or systemd-creds is missing
  --collector-unit UNIT
                       tie the instances to a local collector (BindsTo=, PartOf=, After=)
  --no-collector       remove that coupling
  --no-start           do not call systemctl at all (no enable, no start)
  --destdir DIR        install into a scratch root (also DESTDIR=); implies no start, and
                       enabling is done offline with `systemctl --root`
  -y, --yes            never prompt
  -h, --help           this text
EOF
}

die() {
  echo "$PROG: $*" >&2
  exit 1
}
say() { echo "$PROG: $*"; }

DESTDIR=${DESTDIR:-}
BINARY=""
CONFIG=""
MODES=()
SERVICE_USER=edge-agent
CREDENTIALS=()
CRED_MODE=auto
COLLECTOR_UNIT=""
NO_COLLECTOR=0
NO_START=0
ASSUME_YES=0

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
  case $1 in
  --binary) need_value "$@"; BINARY=$2; shift 2 ;;
  --mode) need_value "$@"; MODES+=("$2"); shift 2 ;;
  --config) need_value "$@"; CONFIG=$2; shift 2 ;;
  --user) need_value "$@"; SERVICE_USER=$2; shift 2 ;;
  --credential) need_value "$@"; CREDENTIALS+=("$2"); shift 2 ;;
  --credential-mode) need_value "$@"; CRED_MODE=$2; shift 2 ;;
  --collector-unit) need_value "$@"; COLLECTOR_UNIT=$2; shift 2 ;;
  --no-collector) NO_COLLECTOR=1; shift ;;
  --no-start) NO_START=1; shift ;;
  --destdir) need_value "$@"; DESTDIR=$2; shift 2 ;;
  -y | --yes) ASSUME_YES=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) die "unknown argument $1 (see --help)" ;;
  esac
done

[[ $EUID -eq 0 ]] || die "run as root (it creates a user and sets file owners)"
[[ $CRED_MODE =~ ^(auto|encrypted|plain)$ ]] || die "--credential-mode must be auto, encrypted or plain"
[[ $SERVICE_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user: invalid user name: $SERVICE_USER"
if [[ -n $DESTDIR ]]; then
  mkdir -p "$DESTDIR"
  DESTDIR=$(cd "$DESTDIR" && pwd)
fi

interactive() { [[ $ASSUME_YES -eq 0 && -t 0 && -t 1 ]]; }

BIN=$DESTDIR/usr/local/bin/edge-agent
UNIT_DIR=$DESTDIR/usr/local/lib/systemd/system
SYSUSERS=$DESTDIR/usr/local/lib/sysusers.d/edge-agent.conf
DROPINS=$DESTDIR/etc/systemd/system/edge-agent@.service.d
ETC=$DESTDIR/etc/edge-agent
CREDS=$ETC/credentials
STATE=$DESTDIR/var/lib/edge-agent
# Paths as the service sees them (no DESTDIR).
CREDS_LIVE=/etc/edge-agent/credentials

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---- binary ---------------------------------------------------------------------------------
if [[ -z $BINARY ]]; then
  case $(uname -m) in
  x86_64) triple=x86_64-unknown-linux-gnu ;;
  aarch64 | arm64) triple=aarch64-unknown-linux-gnu ;;
  *) triple=unknown ;;
  esac
  for candidate in "$SCRIPT_DIR/edge-agent" "$SCRIPT_DIR/../dist/edge-agent-$triple"; do
    if [[ -f $candidate ]]; then
      BINARY=$candidate
      break
    fi
  done
  [[ -n $BINARY ]] || die "no binary found: build one with 'deno task compile' or pass --binary FILE"
fi
[[ -f $BINARY && -x $BINARY ]] || die "--binary $BINARY is not an executable file"
version=$("$BINARY" --version 2>/dev/null) || die "$BINARY --version failed: wrong architecture or not edge-agent?"
say "installing $version"

# ---- modes ----------------------------------------------------------------------------------
if [[ ${#MODES[@]} -eq 0 ]]; then
  mode=stream
  if interactive; then
    read -r -p "Mode to run as a service (stream, route, monitor, ingest, ...) [stream]: " answer
    mode=${answer:-stream}
  fi
  MODES=("$mode")
fi
for mode in "${MODES[@]}"; do
  [[ $mode =~ ^[a-z][a-z0-9-]*$ ]] || die "--mode: invalid mode name: $mode"
done

if [[ ${#CREDENTIALS[@]} -eq 0 ]] && interactive; then
  while :; do
    read -r -p "Add a credential, e.g. aws_secret_access_key (empty when done): " name
    [[ -n $name ]] || break
    read -r -s -p "Value of $name (not echoed): " value
    echo
    tmp=$WORK/prompted-$name
    (umask 077 && printf '%s' "$value" >"$tmp")
    CREDENTIALS+=("$name=$tmp")
  done
fi

for spec in "${CREDENTIALS[@]}"; do
  name=${spec%%=*}
  file=${spec#*=}
  [[ $spec == *=* && $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "--credential: expected NAME=FILE with NAME of [A-Za-z0-9_.-]: $spec"
  [[ -f $file && -r $file ]] || die "--credential $name: cannot read $file"
done

if [[ $CRED_MODE == auto ]]; then
  if [[ -z $DESTDIR ]] && command -v systemd-creds >/dev/null; then
    CRED_MODE=encrypted
  else
    CRED_MODE=plain
  fi
fi
if [[ $CRED_MODE == encrypted && ${#CREDENTIALS[@]} -gt 0 ]]; then
  command -v systemd-creds >/dev/null || die "--credential-mode encrypted needs systemd-creds (systemd 250 or later)"
fi

# ---- validate first: nothing is changed when a config is invalid -----------------------------
# The configs see their credentials as the service will: CREDENTIALS_DIRECTORY with the existing
# ones (decrypted here, in a private temporary directory) and the new ones.
VALIDATE_CREDS=$WORK/credentials
mkdir -m 0700 "$VALIDATE_CREDS"
if [[ -d $CREDS ]]; then
  for f in "$CREDS"/*; do
    [[ -f $f ]] || continue
    base=$(basename "$f")
    if [[ $base == *.cred ]]; then
      systemd-creds decrypt --name="${base%.cred}" "$f" "$VALIDATE_CREDS/${base%.cred}" ||
        die "cannot decrypt existing credential $f (was it encrypted on another host?)"
    else
      cp "$f" "$VALIDATE_CREDS/$base"
    fi
  done
fi
for spec in "${CREDENTIALS[@]}"; do cp "${spec#*=}" "$VALIDATE_CREDS/${spec%%=*}"; done

if [[ -n $CONFIG ]]; then
  [[ -f $CONFIG && -r $CONFIG ]] || die "--config: cannot read $CONFIG"
fi
EXAMPLE=$WORK/example.yaml
if ! "$BINARY" example >"$EXAMPLE" 2>/dev/null; then
  for f in "$SCRIPT_DIR/agent.example.yaml" "$SCRIPT_DIR/../agent.example.yaml"; do
    if [[ -f $f ]]; then
      cp "$f" "$EXAMPLE"
      break
    fi
  done
fi

candidate_config() { # the config a mode will run with
  local target=$ETC/$1.yaml
  if [[ -n $CONFIG ]]; then echo "$CONFIG"
  elif [[ -f $target ]]; then echo "$target"
  else echo "$EXAMPLE"
  fi
}
for mode in "${MODES[@]}"; do
  cfg=$(candidate_config "$mode")
  [[ -s $cfg ]] || die "no config for $mode: pass --config FILE"
  if ! out=$(CREDENTIALS_DIRECTORY=$VALIDATE_CREDS "$BINARY" validate --config "$cfg" 2>&1); then
    echo "$out" >&2
    die "config for $mode ($cfg) is invalid: nothing installed or changed"
  fi
  say "config for $mode is valid ($cfg)"
done

# ---- user -----------------------------------------------------------------------------------
install -d -m 0755 "$(dirname "$SYSUSERS")"
printf 'u %s - "edge-agent log shipper" /var/lib/edge-agent /usr/sbin/nologin\n' "$SERVICE_USER" >"$WORK/sysusers"
install -m 0644 "$WORK/sysusers" "$SYSUSERS"
mkdir -p "$DESTDIR/etc"
if command -v systemd-sysusers >/dev/null; then
  if [[ -n $DESTDIR ]]; then
    systemd-sysusers --root="$DESTDIR" "$SYSUSERS" >/dev/null
  else
    systemd-sysusers "$SYSUSERS" >/dev/null
  fi
else
  prefix=()
  [[ -n $DESTDIR ]] && prefix=(--prefix "$DESTDIR")
  if ! grep -q "^$SERVICE_USER:" "$DESTDIR/etc/passwd" 2>/dev/null; then
    useradd "${prefix[@]}" --system --user-group --home-dir /var/lib/edge-agent --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
fi
uid=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $3 }' "$DESTDIR/etc/passwd")
gid=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $4 }' "$DESTDIR/etc/passwd")
[[ -n $uid && -n $gid ]] || die "user $SERVICE_USER was not created"

# ---- files ----------------------------------------------------------------------------------
install -d -m 0755 "$(dirname "$BIN")" "$UNIT_DIR" "$DROPINS"
install -d -m 0750 -o 0 -g "$gid" "$ETC"
install -d -m 0700 -o 0 -g 0 "$CREDS"
install -d -m 0750 -o "$uid" -g "$gid" "$STATE"

if [[ -f $BIN ]] && cmp -s "$BINARY" "$BIN"; then
  say "binary unchanged"
else
  install -m 0755 -o 0 -g 0 "$BINARY" "$BIN.new"
  mv -f "$BIN.new" "$BIN"
  say "installed $BIN"
fi
install -m 0644 -o 0 -g 0 "$SCRIPT_DIR/systemd/edge-agent@.service" "$UNIT_DIR/edge-agent@.service"

for mode in "${MODES[@]}"; do
  target=$ETC/$mode.yaml
  if [[ -n $CONFIG ]]; then
    if [[ -f $target ]] && ! cmp -s "$CONFIG" "$target"; then
      cp -p "$target" "$target.old"
      say "replaced $target (previous one kept as $mode.yaml.old)"
    fi
    install -m 0640 -o 0 -g "$gid" "$CONFIG" "$target"
  elif [[ -f $target ]]; then
    say "kept existing $target"
  else
    install -m 0640 -o 0 -g "$gid" "$EXAMPLE" "$target"
    say "wrote $target from the example config: edit it, then systemctl restart edge-agent@$mode"
  fi
done

for spec in "${CREDENTIALS[@]}"; do
  name=${spec%%=*}
  file=${spec#*=}
  if [[ $CRED_MODE == encrypted ]]; then
    systemd-creds encrypt --name="$name" "$file" "$CREDS/$name.cred.new"
    chmod 0600 "$CREDS/$name.cred.new"
    mv -f "$CREDS/$name.cred.new" "$CREDS/$name.cred"
    rm -f "$CREDS/${name:?}"
    say "credential $name: encrypted for this host ($CREDS_LIVE/$name.cred)"
  else
    install -m 0600 -o 0 -g 0 "$file" "$CREDS/$name"
    rm -f "$CREDS/$name.cred"
    say "credential $name: root-only file ($CREDS_LIVE/$name)"
  fi
done

# Drop-ins: regenerated from what is on disk, so re-runs converge.
{
  echo "# Written by install.sh from /etc/edge-agent/credentials/: re-run it to change."
  echo "[Service]"
  for f in "$CREDS"/*; do
    [[ -f $f ]] || continue
    base=$(basename "$f")
    if [[ $base == *.cred ]]; then
      echo "LoadCredentialEncrypted=${base%.cred}:$CREDS_LIVE/$base"
    else
      echo "LoadCredential=$base:$CREDS_LIVE/$base"
    fi
  done
} >"$WORK/credentials.conf"
if grep -q '^Load' "$WORK/credentials.conf"; then
  install -m 0644 "$WORK/credentials.conf" "$DROPINS/50-credentials.conf"
else
  rm -f "$DROPINS/50-credentials.conf"
fi

if [[ $SERVICE_USER != edge-agent ]]; then
  printf '# Written by install.sh --user.\n[Service]\nUser=%s\nGroup=%s\n' \
    "$SERVICE_USER" "$SERVICE_USER" >"$WORK/user.conf"
  install -m 0644 "$WORK/user.conf" "$DROPINS/10-user.conf"
else
  rm -f "$DROPINS/10-user.conf"
fi

if [[ -n $COLLECTOR_UNIT && $COLLECTOR_UNIT != *.* ]]; then COLLECTOR_UNIT=$COLLECTOR_UNIT.service; fi
for mode in "${MODES[@]}"; do
  dir=$DESTDIR/etc/systemd/system/edge-agent@$mode.service.d
  if [[ $NO_COLLECTOR -eq 1 ]]; then
    rm -f "$dir/60-collector.conf"
    rmdir "$dir" 2>/dev/null || true
  elif [[ -n $COLLECTOR_UNIT ]]; then
    install -d -m 0755 "$dir"
    printf '%s\n' \
      "# Written by install.sh --collector-unit: edge-agent@$mode runs only while $COLLECTOR_UNIT does." \
      "[Unit]" \
      "# Stop when the collector stops." \
      "BindsTo=$COLLECTOR_UNIT" \
      "# Restart when the collector restarts." \
      "PartOf=$COLLECTOR_UNIT" \
      "# Start after it, so its inputs are listening." \
      "After=$COLLECTOR_UNIT" >"$WORK/collector.conf"
    install -m 0644 "$WORK/collector.conf" "$dir/60-collector.conf"
    say "edge-agent@$mode is bound to $COLLECTOR_UNIT"
  fi
done

# ---- enable and start -----------------------------------------------------------------------
units=()
for mode in "${MODES[@]}"; do units+=("edge-agent@$mode.service"); done
if [[ $NO_START -eq 1 ]]; then
  say "installed; not enabled or started (--no-start): systemctl enable --now ${units[*]}"
elif [[ -n $DESTDIR ]]; then
  systemctl --root="$DESTDIR" enable "${units[@]}" >/dev/null 2>&1 ||
    die "systemctl --root=$DESTDIR enable ${units[*]} failed"
  say "installed into $DESTDIR and enabled offline"
else
  systemctl daemon-reload
  systemctl enable "${units[@]}" >/dev/null
  for unit in "${units[@]}"; do
    if systemctl is-active --quiet "$unit"; then
      systemctl restart "$unit"
      say "restarted $unit (upgrade)"
    else
      systemctl start "$unit"
      say "started $unit"
    fi
  done
  say "logs: journalctl -u 'edge-agent@*' -f"
fi
