# timeout: 400
# A real st drive that fails mid-backup: a tgt tape whose backing file lives on a 6 MiB tmpfs (the
# tape is 32 MiB), so its writes fail with EIO once that file system is full, well before tar's
# 20 MiB archive ends. With the default policy the writer (tar through /dev/pnst0) gets an error at
# its next write and the daemon's log names the drive; with min-copies 1 the backup completes on the
# image, which restores alone, and status shows the failed drive set aside.
#
# The failure comes mid-stream on purpose: CUSE sends no flush, so close(2) on a CUSE device cannot
# return an error (README "Known limits"); a failure first seen at the close-time filemark reaches
# the log and status, not the writer.
source "$CASES/lib.sh"
MiB=$((1 << 20))

mkdir -p "$WORK/small1" "$WORK/small2"
mount -t tmpfs -o size=6m small1 "$WORK/small1"
mount -t tmpfs -o size=6m small2 "$WORK/small2"
# Registered first, so it runs last: after tgtd, which holds the images open, has stopped.
at_exit "umount $WORK/small1 $WORK/small2"
tgt_start
bad1=$(tgt_add_tape 32 "$WORK/small1/bad.img")
bad2=$(tgt_add_tape 32 "$WORK/small2/bad.img")

mkdir -p "$WORK/src"
for i in $(seq 1 10); do head -c $((2 * MiB)) /dev/urandom >"$WORK/src/f$i"; done

note "default policy: every copy is required"
start_daemon "
drives:
  - name: d0
    cuse: pnst0
    sinks: ['nst:$bad1', 'file:$WORK/one.tap']
"
rc=0
(cd "$WORK" && tar -c -f /dev/pnst0 src) 2>"$WORK/tar.err" || rc=$?
cat "$WORK/tar.err"
((rc != 0)) || fail "tar succeeded although a required copy failed"
expect_match "$(cat "$WORK/tar.err")" "Input/output error" "tar's error"
log=$(grep 'copy failed' "$DAEMON_LOG" || true)
expect_match "$log" "the writer gets the error" "the daemon's log"
expect_match "$log" "nst:$bad1" "the failed drive named in the log"
stop_daemon

note "min-copies 1: the backup goes on with the image"
start_daemon "
drives:
  - name: d1
    cuse: pnst1
    min-copies: 1
    sinks: ['nst:$bad2', 'file:$WORK/two.tap']
"
(cd "$WORK" && tar -c -f /dev/pnst1 src) || fail "tar failed although min-copies 1 allows the image alone"
expect_match "$(grep 'copy failed' "$DAEMON_LOG")" "set aside" "the daemon's log"
status=$(tapeproxy status d1)
echo "$status"
expect_match "$status" "nst:$bad2: .*FAILED at object [0-9]+: .*EIO.*\(set aside" "status of the failed drive"
# The copy stops at the first write st refused, right after the records it took, not at the end of
# what was queued behind it (status once said object 1246 for a cartridge holding 611 records).
read -r records object < <(sed -nE "s|.*nst:$bad2: .* ([0-9]+) records written, FAILED at object ([0-9]+):.*|\1 \2|p" <<<"$status") || true
[[ -n $object ]] || fail "status does not say how many records the failed drive took and where it stopped"
((object == records)) || fail "the failed drive's copy is said to stop at object $object, after $records records written"
((object <= 6 * MiB / 10240)) || fail "object $object is past what a 6 MiB file system holds of 10 KiB records"
note "the failed drive's copy stops at object $object, after its $records records"
stop_daemon

start_daemon "
drives:
  - name: r0
    cuse: pnst2
    sinks: ['file:$WORK/two.tap?readonly']
"
mkdir -p "$WORK/out"
(cd "$WORK/out" && tar -x -f /dev/pnst2) || fail "restoring from the image failed"
diff -r "$WORK/src" "$WORK/out/src" >/dev/null || fail "the image restored a different tree"
note "the image restores the tree alone"
