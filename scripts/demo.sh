#!/usr/bin/env bash
# The main job, end to end: a tar backup through the pseudo drive, mirrored to two SIMH image
# copies that change volume together at early warning, then restored from each copy on its own
# and compared with the original files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

tapeproxy() { node dist/client/tapeproxy.js "$@"; }
work=$(mktemp -d /tmp/tapeproxy-demo.XXXXXX)
daemon_pid=
cleanup() { if [[ -n $daemon_pid ]]; then kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

# Starts a daemon in the background for drive pnst0 with the given sinks; sets TAPEPROXY_SERVER.
start_daemon() {
  local log=$work/daemon-$RANDOM.log
  node dist/client/tapeproxy.js daemon --drive pnst0 --listen 127.0.0.1:0 "${@/#/--sink=}" >"$log" &
  daemon_pid=$!
  for _ in $(seq 100); do
    if grep -q '"msg":"listening"' "$log"; then
      TAPEPROXY_SERVER=$(sed -n 's/.*"address":"\([^"]*\)","msg":"listening".*/\1/p' "$log")
      export TAPEPROXY_SERVER
      return
    fi
    sleep 0.1
  done
  echo "demo: the daemon did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=; }

source_tree=node_modules/typescript
echo "== Backing up $source_tree ($(du -sh "$source_tree" | cut -f1)) with tar, through pseudo drive pnst0"
echo "   copy A: $work/a-%v.tap, copy B: $work/b-%v.tap, volumes of 12 MiB, early warning 1 MiB before the end"
start_daemon "file:$work/a-%v.tap?capacity=12M&early-warning=1M" "file:$work/b-%v.tap?capacity=12M&early-warning=1M"
tar -cf - -b 20 "$source_tree" | tapeproxy write pnst0 --record-size 10K --multi-volume
tapeproxy status pnst0
stop_daemon

echo
echo "== The copies, volume by volume"
for image in "$work"/a-*.tap "$work"/b-*.tap; do
  printf '%s: ' "$(basename "$image")"
  tapeproxy image ls "$image" | tail -n 1
done
for a in "$work"/a-*.tap; do
  cmp "$a" "${a/a-/b-}" && echo "$(basename "$a") and $(basename "${a/a-/b-}") are identical"
done

for copy in a b; do
  echo
  echo "== Restoring from copy ${copy^^} alone (read-only) and comparing with the original"
  start_daemon "file:$work/$copy-%v.tap?readonly"
  mkdir -p "$work/restore-$copy"
  tapeproxy read pnst0 --multi-volume | tar -xf - -b 20 -C "$work/restore-$copy"
  stop_daemon
  diff -r "$source_tree" "$work/restore-$copy/$source_tree"
  echo "copy ${copy^^}: restored tree is identical to $source_tree"
done
echo
echo "demo: success (files kept in $work)"
