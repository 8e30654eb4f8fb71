#!/usr/bin/env bash
# The main job, end to end, with unmodified GNU tar: a multi-volume backup (tar -M) written to the
# pseudo drive's device (CUSE where the kernel has it, else a FUSE file), mirrored to two SIMH image
# copies whose volumes change together at early warning; then each copy alone is restored with
# tar -x -M and compared with the original tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

work=$(mktemp -d /tmp/tapeproxy-demo.XXXXXX)
daemon_pid=
cleanup() { if [[ -n $daemon_pid ]]; then kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

# CUSE gives a real character device; without it (e.g. this project's CI host) a FUSE file does.
if [[ ${DEMO_FRONTEND:-} == cuse || ( -z ${DEMO_FRONTEND:-} && -e /dev/cuse ) ]]; then
  device=/dev/pdemo0
  front_end=(--cuse pdemo0)
else
  device=$work/pdemo0
  front_end=(--fuse "$device")
fi

# Starts drive pdemo0 with the given sinks behind $device and waits until the device is up.
start_daemon() {
  local log=$work/daemon-$RANDOM.log
  node dist/client/tapeproxy.js daemon --drive pdemo0 "${front_end[@]}" --runtime-dir "$work/run" \
    --listen 127.0.0.1:0 "${@/#/--sink=}" >"$log" &
  daemon_pid=$!
  for _ in $(seq 200); do
    if grep -q '"msg":"listening"' "$log"; then
      TAPEPROXY_SERVER=$(sed -n 's/.*"address":"\([^"]*\)","msg":"listening".*/\1/p' "$log")
      export TAPEPROXY_SERVER
      return
    fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "demo: the daemon did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=; }

source_tree=node_modules/typescript
echo "== tar -c -M -b 64 of $source_tree ($(du -sh "$source_tree" | cut -f1)) to $device"
echo "   copy A: $work/a-%v.tap, copy B: $work/b-%v.tap: 12 MiB volumes, early warning 1 MiB before the end"
start_daemon "file:$work/a-%v.tap?capacity=12M&early-warning=1M" "file:$work/b-%v.tap?capacity=12M&early-warning=1M"
tar -c -M -F true -b 64 -f "$device" "$source_tree"
mt -f "$device" status
node dist/client/tapeproxy.js status pdemo0
stop_daemon

echo
echo "== The copies, volume by volume"
for a in "$work"/a-*.tap; do
  b=${a/a-/b-}
  cmp -s "$a" "$b" || { echo "demo: $a and $b differ" >&2; exit 1; }
  echo "$(basename "$a") = $(basename "$b"): $(node dist/client/tapeproxy.js image ls "$a" | tail -n 1)"
done

for copy in a b; do
  echo
  echo "== Restoring from copy ${copy^^} alone (read-only) with tar -x -M, and comparing"
  start_daemon "file:$work/$copy-%v.tap?readonly"
  mkdir -p "$work/restore-$copy"
  tar -x -M -F true -b 64 -f "$device" -C "$work/restore-$copy"
  stop_daemon
  diff -r "$source_tree" "$work/restore-$copy/$source_tree"
  echo "copy ${copy^^}: the restored tree is identical to $source_tree"
done
echo
echo "demo: success; the images are in $work"
