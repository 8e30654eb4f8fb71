# timeout: 420
# A real st drive with no changer: at the lockstep volume change the drive unloads and the daemon
# waits for an operator to load the next cartridge, saying so in its log, while the writer (tar -M
# through /dev/pnst0) waits; the test plays the operator and the archive goes on. Reading back waits
# for the operator the same way. With a short load-timeout and no operator, the open that needs the
# next volume fails with ENOMEDIUM and the log names the copy and what was missing.
source "$CASES/lib.sh"
MiB=$((1 << 20))

tgt_start
a=$(tgt_add_tape 8 "$WORK/a-1.img" A1)
b=$(tgt_add_tape 8 "$WORK/b-1.img" B1)

mkdir -p "$WORK/src"
for i in $(seq 1 10); do head -c $((1 * MiB)) /dev/urandom >"$WORK/src/f$i"; done

# waits_for_operator LOG DEVICE: the daemon's log says it waits for a cartridge in DEVICE.
waits_for_operator() { grep -q "\"msg\":\"waiting for a cartridge in $2\"" "$1"; }

start_daemon "
drives:
  - name: d0
    cuse: pnst0
    sinks: ['nst:$a?early-warning=2M&load-timeout=300', 'file:$WORK/img-%v.tap']
  - name: d1
    cuse: pnst1
    sinks: ['nst:$b?load-timeout=3']
"
note "tar -c -M through /dev/pnst0 onto $a: volume 2 needs an operator"
(cd "$WORK" && exec tar -c -M -F true -f /dev/pnst0 src) >"$WORK/tar.log" 2>&1 &
tar_pid=$!
at_exit "kill $tar_pid 2>/dev/null"
wait_for 240 waits_for_operator "$DAEMON_LOG" "$a" || fail "the daemon never said it waits for a cartridge in $a"
grep "waiting for a cartridge" "$DAEMON_LOG"
# tgt does not eject at the drive's unload: until the cartridge is taken out, the daemon must not
# take the one still in the drive (volume 1) for volume 2.
wait_for 30 grep -q "the cartridge of volume 1 is still in $a" "$DAEMON_LOG" || fail "the daemon did not say volume 1 is still in $a"
sleep 2
kill -0 "$tar_pid" 2>/dev/null || fail "tar went on with volume 1's cartridge still in the drive: $(cat "$WORK/tar.log")"
note "operator: taking volume 1 out of $a, then loading a new cartridge"
tgt_eject 1
sleep 3 # the daemon looks once a second: it sees the drive empty
tgtimg --op new --device-type tape --barcode A2 --size 8 --type data --file "$WORK/a-2.img" >/dev/null
tgt_insert 1 "$WORK/a-2.img"
wait "$tar_pid" || fail "tar -c -M failed after the operator loaded the cartridge: $(cat "$WORK/tar.log")"
status=$(tapeproxy status d0)
echo "$status"
expect_match "$status" "nst:$a: volume 2" "the drive is on volume 2"

note "no operator: with load-timeout=3 the open that needs volume 2 fails"
dd if=/dev/zero of=/dev/pnst1 bs=10240 count=10 2>/dev/null || fail "writing to /dev/pnst1 failed"
mt -f /dev/pnst1 offline
tgt_eject 2 # a real drive ejects at the unload; tgt needs the operator
expect_errno ENOMEDIUM dd if=/dev/zero of=/dev/pnst1 bs=10240 count=1
expect_match "$(grep 'copy failed' "$DAEMON_LOG" | head -n 1)" "nst:$b: no cartridge for volume 2 after 3 s" "the daemon's log"
stop_daemon

note "restoring from the tape alone: the operator loads volume 2 when asked"
tgt_swap_tape 1 "$WORK/a-1.img"
start_daemon "
drives:
  - name: r0
    cuse: pnst2
    sinks: ['nst:$a?readonly&load-timeout=300']
"
mkdir -p "$WORK/out"
# As with a plain drive: at the end of volume 1 tar's -F script unloads it, and the open that
# follows waits for the operator to load volume 2.
(cd "$WORK/out" && exec tar -x -M -F 'mt -f /dev/pnst2 offline' -f /dev/pnst2) >"$WORK/restore.log" 2>&1 &
restore_pid=$!
at_exit "kill $restore_pid 2>/dev/null"
wait_for 240 waits_for_operator "$DAEMON_LOG" "$a" || fail "the daemon never asked for volume 2 while reading"
tgt_eject 1
sleep 3
tgt_insert 1 "$WORK/a-2.img"
wait "$restore_pid" || fail "tar -x -M failed: $(cat "$WORK/restore.log")"
diff -r "$WORK/src" "$WORK/out/src" >/dev/null || fail "the tape restored a different tree"
note "the tape restores the tree alone, with an operator for volume 2"
