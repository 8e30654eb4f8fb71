# timeout: 180
# The daemon's CUSE device /dev/pnst0 appears, and mt-st (status, weof, rewind, fsf, bsf, eod) and dd
# move it as they move a real st drive: the same sequence runs on a tgt tape (/dev/nstN, the Linux st
# driver) and on /dev/pnst0, and mt status must give the same file and block numbers and status
# bits after every step, as well as the values st's rules give.
source "$CASES/lib.sh"

start_daemon "
drives:
  - name: d0
    cuse: pnst0
    sinks: ['file:$WORK/d0.tap']
"
[[ -c /dev/pnst0 ]] || fail "/dev/pnst0 is not a character device after the daemon started"
# deploy/60-tapeproxy.rules matches SUBSYSTEM=="cuse", KERNEL=="pnst*": the kernel's CUSE class.
[[ -e /sys/class/cuse/pnst0 ]] || fail "/dev/pnst0 is not in the cuse subsystem (/sys/class/cuse/pnst0), which the udev rule matches"
note "/dev/pnst0: $(stat -c '%F, mode %a, group %G' /dev/pnst0)"

tgt_start
nst=$(tgt_add_tape 16 "$WORK/real.img")

head -c $((3 * 10240)) /dev/urandom >"$WORK/three"
head -c 10240 /dev/urandom >"$WORK/one"

# Every step, then the drive's state as mt status shows it.
mt_sequence() {
  local dev=$1
  step() {
    local what=$1
    shift
    "$@" >/dev/null 2>"$WORK/step.err" || fail "$what on $dev: $(cat "$WORK/step.err")"
    echo "$what: $(mt_state "$dev")"
  }
  echo "open: $(mt_state "$dev")"
  step "dd 3 records" dd if="$WORK/three" of="$dev" bs=10240
  step "weof" mt -f "$dev" weof
  step "dd 1 record" dd if="$WORK/one" of="$dev" bs=10240
  step "rewind" mt -f "$dev" rewind
  step "fsf" mt -f "$dev" fsf
  step "fsf" mt -f "$dev" fsf
  step "fsf" mt -f "$dev" fsf
  step "rewind" mt -f "$dev" rewind
  step "fsf 2" mt -f "$dev" fsf 2
  step "dd read file 2" dd if="$dev" of=/dev/null bs=1M
  step "bsf 2" mt -f "$dev" bsf 2
  step "fsf" mt -f "$dev" fsf
  step "rewind" mt -f "$dev" rewind
  step "eod" mt -f "$dev" eod
}

note "the sequence on the real st drive $nst"
mt_sequence "$nst" | tee "$WORK/real.trace"
note "the sequence on /dev/pnst0"
mt_sequence /dev/pnst0 | tee "$WORK/pseudo.trace"

note "/dev/pnst0 against the real drive"
# One known difference is tgt's, not st's: st's MTEOM spaces forward 0x7fffff filemarks and takes the
# residual from the sense data at end of data to count the files; tgt reports no residual, so st
# counts 8388607 files. A drive that reports it gives the number of files, as the pseudo drive does
# (reference 0.12; checked below).
sed -i 's/^eod: file=8388607 /eod: file=3 /' "$WORK/real.trace"
if ! diff -u "$WORK/real.trace" "$WORK/pseudo.trace"; then
  fail "mt status on /dev/pnst0 differs from the real st drive (- real, + pseudo)"
fi

# The real drive is the reference, but a check of the values themselves keeps a wrong reference
# from passing: these follow from st's rules (reference section 1.5).
expect_line() {
  grep -qx -- "$1" "$WORK/pseudo.trace" || fail "expected the line '$1' in the /dev/pnst0 trace"
  echo "ok: $1"
}
expect_line "open: file=0 block=0 BOT ONLINE IM_REP_EN"
expect_line "dd 3 records: file=1 block=0 EOF ONLINE IM_REP_EN"
expect_line "weof: file=2 block=0 EOF ONLINE IM_REP_EN"
expect_line "fsf 2: file=2 block=0 EOF ONLINE IM_REP_EN"
expect_line "dd read file 2: file=3 block=0 EOF ONLINE IM_REP_EN"
expect_line "bsf 2: file=1 block=-1 ONLINE IM_REP_EN"
expect_line "eod: file=3 block=-1 EOD ONLINE IM_REP_EN"

note "what the image holds"
tapeproxy image ls "$WORK/d0.tap" | tee "$WORK/image.ls"
