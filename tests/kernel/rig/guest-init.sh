#!/bin/bash
# PID 1 of the kernel rig's guest, started by the initramfs from the repository share. Runs the
# cases the host listed in /mnt/run/cases.tsv ("NAME TIMEOUT_SECONDS" lines), in order, each in
# its own work folder with its own timeout; writes each one's output to results/NAME.log and then
# "EXIT_CODE SECONDS" to results/NAME.rc; powers the guest off at the end. A case whose .rc is
# missing did not run to its end (the host treats that as a failure).
set -u
export PATH=/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
run=/mnt/run
results=$run/results
mkdir -p "$results"
exec </dev/null >>"$results/init.log" 2>&1

t0=$EPOCHREALTIME
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
# The console is the host's record of a guest that never got as far as writing results.
say() {
  echo "guest: $*"
  echo "guest: $*" >/dev/console
}
power_off() {
  sync
  echo o >/proc/sysrq-trigger
  sleep 30
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -p /run/lock # iscsiadm keeps its lock files there
mount -t tmpfs tmpfs /tmp
mount -t tmpfs -o size=75% tmpfs /work
mount -t tmpfs tmpfs /app
# devtmpfs has no /dev/fd: bash's process substitution and /dev/stdin need it.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
ip link set lo up
hostname tapeproxy-rig
say "up after $(awk '{ print $1 }' /proc/uptime) s"

# The daemon's files from a tar the host packed (one sequential read over 9p, instead of thousands
# of small files read under TCG), else straight from the repository share.
mkdir -p /app/bin
cp /mnt/node/node /app/bin/node
if [[ -f $run/app.tar ]]; then
  tar -xf "$run/app.tar" -C /app || { say "cannot unpack app.tar"; power_off; }
else
  for part in dist node_modules package.json cuse-shim/build; do
    mkdir -p "/app/$(dirname "$part")"
    ln -s "/mnt/repo/$part" "/app/$part"
  done
fi
say "app ready in $(elapsed "$t0") s: node $(node --version)"

while read -r name timeout; do
  [[ -n $name ]] || continue
  work=/work/$name
  mkdir -p "$work"
  say "case $name (timeout ${timeout}s)"
  start=$EPOCHREALTIME
  (
    cd "$work" &&
      exec env CASE="$name" WORK="$work" APP=/app REPO=/mnt/repo CASES=/mnt/repo/tests/kernel/cases \
        timeout --kill-after=10 "$timeout" bash "/mnt/repo/tests/kernel/cases/$name.sh"
  ) >"$results/$name.log" 2>&1
  rc=$?
  took=$(elapsed "$start")
  ((rc == 124)) && echo "rig: case $name timed out after ${timeout}s" >>"$results/$name.log"
  # Whatever the case left running (its own cleanup failed or was cut short) must not disturb the
  # next one. kill -1 from PID 1 reaches every process but this one.
  kill -KILL -1 2>/dev/null
  while wait -n 2>/dev/null; do :; done
  echo "$rc $took" >"$results/$name.rc"
  say "case $name: exit $rc in ${took}s"
  rm -rf "$work"
done <"$run/cases.tsv"

say "all cases done after $(awk '{ print $1 }' /proc/uptime) s"
echo done >"$results/done"
power_off
