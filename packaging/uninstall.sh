#!/usr/bin/env bash
# uninstall.sh: remove what install.sh installed. Config (/etc/edge-agent, credentials included),
# state (/var/lib/edge-agent) and the service user stay unless --purge.
set -euo pipefail

PROG=uninstall.sh

usage() {
  cat <<'EOF'
Usage: uninstall.sh [--purge] [--no-stop] [--destdir DIR] [-y]

Stops and disables every edge-agent@<mode> instance, then removes the binary, the unit and its
drop-ins. Keeps /etc/edge-agent (configs and credentials), /var/lib/edge-agent (checkpoints) and
the edge-agent user (with its sysusers.d entry), so a later install resumes where this one
stopped.

  --purge         also delete /etc/edge-agent, /var/lib/edge-agent and the service user
  --no-stop       do not call systemctl at all
  --destdir DIR   operate on a scratch root (also DESTDIR=); systemctl only offline (--root)
  -y, --yes       never prompt (a terminal is asked to confirm --purge)
  -h, --help      this text
EOF
}

die() {
  echo "$PROG: $*" >&2
  exit 1
}
say() { echo "$PROG: $*"; }

DESTDIR=${DESTDIR:-}
PURGE=0
NO_STOP=0
ASSUME_YES=0
while [[ $# -gt 0 ]]; do
  case $1 in
  --purge) PURGE=1; shift ;;
  --no-stop) NO_STOP=1; shift ;;
  --destdir)
    [[ $# -ge 2 && -n $2 ]] || die "--destdir needs a value"
    DESTDIR=$2
    shift 2
    ;;
  -y | --yes) ASSUME_YES=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ $EUID -eq 0 ]] || die "run as root"
if [[ -n $DESTDIR ]]; then
  [[ -d $DESTDIR ]] || die "--destdir $DESTDIR does not exist"
  DESTDIR=$(cd "$DESTDIR" && pwd)
fi

BIN=$DESTDIR/usr/local/bin/edge-agent
UNIT=$DESTDIR/usr/local/lib/systemd/system/edge-agent@.service
SYSUSERS=$DESTDIR/usr/local/lib/sysusers.d/edge-agent.conf
SYSTEMD_ETC=$DESTDIR/etc/systemd/system
ETC=$DESTDIR/etc/edge-agent
STATE=$DESTDIR/var/lib/edge-agent

if [[ $PURGE -eq 1 && $ASSUME_YES -eq 0 && -t 0 && -t 1 ]]; then
  read -r -p "Delete $ETC (configs, credentials), $STATE (checkpoints) and the user? [y/N] " answer
  [[ $answer == [yY]* ]] || die "not purged; nothing changed"
fi

# The instances: enabled ones, ones with drop-ins, and ones with a config.
declare -A seen=()
units=()
shopt -s nullglob
for path in "$SYSTEMD_ETC"/*.wants/edge-agent@*.service "$SYSTEMD_ETC"/edge-agent@?*.service.d \
  "$ETC"/*.yaml; do
  name=$(basename "$path")
  name=${name%.d}
  name=${name%.yaml}
  name=${name#edge-agent@}
  name=${name%.service}
  if [[ -z ${seen[$name]:-} ]]; then
    seen[$name]=1
    units+=("edge-agent@$name.service")
  fi
done

if [[ $NO_STOP -eq 0 && ${#units[@]} -gt 0 ]]; then
  if [[ -n $DESTDIR ]]; then
    systemctl --root="$DESTDIR" disable "${units[@]}" >/dev/null 2>&1 || true
  else
    systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
  fi
fi
# Whatever systemctl did or was not asked to do, no enablement links stay behind.
for link in "$SYSTEMD_ETC"/*.wants/edge-agent@*.service; do rm -f "$link"; done
for dir in "$SYSTEMD_ETC"/*.wants; do rmdir "$dir" 2>/dev/null || true; done

rm -rf "$SYSTEMD_ETC"/edge-agent@*.service.d
rm -f "$BIN" "$BIN.new" "$UNIT"
if [[ $NO_STOP -eq 0 && -z $DESTDIR ]]; then systemctl daemon-reload || true; fi
say "removed the binary, the unit and its drop-ins${units[*]:+ (${units[*]})}"

if [[ $PURGE -eq 1 ]]; then
  user=$(awk '$1 == "u" { print $2; exit }' "$SYSUSERS" 2>/dev/null || true)
  user=${user:-edge-agent}
  rm -rf "$ETC" "$STATE"
  rm -f "$SYSUSERS"
  prefix=()
  [[ -n $DESTDIR ]] && prefix=(--prefix "$DESTDIR")
  if grep -q "^$user:" "$DESTDIR/etc/passwd" 2>/dev/null; then
    userdel "${prefix[@]}" "$user" || die "could not remove user $user"
  fi
  if grep -q "^$user:" "$DESTDIR/etc/group" 2>/dev/null; then
    groupdel "${prefix[@]}" "$user" || die "could not remove group $user"
  fi
  say "purged $ETC, $STATE and user $user"
else
  say "kept $ETC (configs, credentials), $STATE (state) and the service user: --purge removes them"
fi
