# shellcheck shell=bash
# Helpers for the kernel rig's cases. A case is tests/kernel/cases/NAME.sh, run by bash as root in
# the rig's guest (Debian 12, kernel 6.1, with CUSE, st, sg and iSCSI), and begins with
#
#   # timeout: SECONDS        (optional header; default 120)
#   source "$CASES/lib.sh"
#
# The guest init runs it in an empty folder $WORK on a tmpfs, with $CASE (its name), $APP (the
# built daemon: dist/, node_modules/, cuse-shim/build/, package.json), $REPO (the repository,
# read-only) and $CASES (this folder). Exit status 0 is a pass; everything the case prints is its
# log, shown by vitest when it fails. What a case starts with these helpers is stopped when it exits.
set -euo pipefail

TAPEPROXY_JS=$APP/dist/client/tapeproxy.js
TAPE_OPS=$CASES/tape-ops.pl
TGT_IQN=iqn.2025-01.test.tapeproxy:vtape

# ---- results ----

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

note() { echo "== [${SECONDS}s] $*"; }

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
  [[ $1 == "$2" ]] || fail "${3:-value}: expected '$2', got '$1'"
  echo "ok: ${3:-value} = '$1'"
}

# expect_match ACTUAL EXTENDED_REGEX WHAT
expect_match() {
  [[ $1 =~ $2 ]] || fail "${3:-value}: expected to match /$2/, got '$1'"
  echo "ok: ${3:-value} matches /$2/"
}

# The message strerror gives for an errno name (ENOSPC -> "No space left on device").
errno_text() {
  perl -MErrno -e '$! = Errno->can($ARGV[0]) ? Errno->can($ARGV[0])->() : die "no errno $ARGV[0]\n"; print "$!"' "$1"
}

# expect_errno ERRNO_NAME COMMAND...: the command must fail and say strerror(ERRNO) on stderr, as
# coreutils and mt-st do for a failed system call.
expect_errno() {
  local name=$1 text out rc=0
  shift
  text=$(errno_text "$name")
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  ((rc != 0)) || fail "$*: expected to fail with $name, but it succeeded"
  [[ $out == *"$text"* ]] || fail "$*: expected $name ($text), got exit $rc: $out"
  echo "ok: $* fails with $name"
}

# expect_ok COMMAND...: the command must succeed; its output goes to the log.
expect_ok() {
  "$@" || fail "$*: exit $?"
}

# wait_for SECONDS COMMAND...: retries the command every 0.1 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# ---- cleanup: at_exit COMMAND runs COMMAND (eval'd) when the case exits, last registered first ----

_at_exit=()
at_exit() { _at_exit+=("$1"); }
_run_at_exit() {
  local rc=$? i
  set +e
  if ((rc != 0)); then
    # The logs of what the case started say why more often than the case's own output.
    for log in "$WORK"/*.log; do
      [[ -f $log ]] || continue
      echo "---- last lines of $(basename "$log") ----"
      tail -n 40 "$log"
    done
  fi
  for ((i = ${#_at_exit[@]} - 1; i >= 0; i--)); do
    eval "${_at_exit[i]}"
  done
  exit "$rc"
}
trap _run_at_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL if it is still there after SECONDS (default 20).
stop_pid() {
  local pid=$1 limit=${2:-20}
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + limit))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ---- the daemon ----

tapeproxy() { node "$TAPEPROXY_JS" "$@"; }

# start_daemon CONFIG: runs `tapeproxy daemon --config CONFIG` (a file, or the YAML text itself),
# listening on a free loopback port; returns when it logs "listening" (its kernel devices are up
# then), with TAPEPROXY_SERVER set for the client commands and DAEMON_PID and DAEMON_LOG set.
# Node under TCG is slow: the daemon takes about 5 s to start.
_daemons=0
start_daemon() {
  local config=$1 n=$((++_daemons))
  if [[ ! -f $config ]]; then
    printf '%s\n' "$config" >"$WORK/daemon-$n.yaml"
    config=$WORK/daemon-$n.yaml
  fi
  # CUSE devices need /dev/cuse; loading it costs nothing when no drive asks for one.
  modprobe cuse
  DAEMON_LOG=$WORK/daemon-$n.log
  setsid node "$TAPEPROXY_JS" daemon --config "$config" --listen 127.0.0.1:0 >"$DAEMON_LOG" 2>&1 &
  DAEMON_PID=$!
  at_exit "stop_pid $DAEMON_PID"
  local deadline=$((SECONDS + 90))
  until grep -q '"msg":"listening"' "$DAEMON_LOG"; do
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon exited before listening (config $config)"
    ((SECONDS < deadline)) || fail "the daemon did not log 'listening' within 90 s"
    sleep 0.1
  done
  TAPEPROXY_SERVER=$(sed -n 's/.*"address":"\([^"]*\)".*"msg":"listening".*/\1/p' "$DAEMON_LOG" | head -n 1)
  [[ -n $TAPEPROXY_SERVER ]] || fail "no address in the daemon's 'listening' line"
  export TAPEPROXY_SERVER
}

# stop_daemon: stops the daemon start_daemon started last (its drives close, images are synced).
stop_daemon() { stop_pid "$DAEMON_PID"; }

# ---- mt-st ----

# mt_state DEVICE: "file=F block=B BITS..." from `mt -f DEVICE status` (mt-st's file and block
# numbers and its general status bits, e.g. "file=1 block=0 EOF ONLINE IM_REP_EN").
mt_state() {
  local out
  out=$(mt -f "$1" status 2>&1) || fail "mt -f $1 status: $out"
  awk '/^File number=/ { gsub(/[,.]/, ""); split($2, f, "="); split($4, b, "="); pos = "file=" f[2] " block=" b[2] }
       bits { $1 = $1; flags = $0; bits = 0 }
       /^General status bits on/ { bits = 1 }
       END { print pos " " flags }' <<<"$out"
}

# ---- real st drives: tgt's virtual tapes over iSCSI on loopback ----
#
# tgt_start starts tgtd with one iSCSI target and iscsid; each tgt_add_tape adds a tape as the next
# LUN and prints the /dev/nstN the st driver made for it. Block limits are 4 B to 1 MiB; the tape
# reports early warning at its size, has no physical end (past the size, writes go on alternating
# with ENOSPC) and fails with EIO when its backing file system is full: keep images on a file system
# with room (the $WORK tmpfs has most of the guest's memory).

tgt_start() {
  modprobe st
  modprobe sg
  modprobe iscsi_tcp
  mkdir -p "$WORK/.tgt"
  echo 0 >"$WORK/.tgt/last-lun"
  # Services run in their own session: iscsid signals its whole process group when it stops.
  setsid tgtd -f >"$WORK/tgtd.log" 2>&1 &
  local tgtd=$!
  at_exit "stop_pid $tgtd"
  wait_for 20 tgtadm --lld iscsi --mode system --op show || fail "tgtd did not start"
  tgtadm --lld iscsi --mode target --op new --tid 1 --targetname "$TGT_IQN"
  tgtadm --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
  setsid iscsid -f >"$WORK/iscsid.log" 2>&1 &
  local iscsid=$!
  at_exit "stop_pid $iscsid"
  wait_for 20 _iscsid_up || fail "iscsid did not start"
  # Logged out before iscsid and tgtd stop (at_exit runs last first), so no SCSI host is left
  # waiting for a target that is gone.
  at_exit "iscsiadm -m node -T $TGT_IQN -p 127.0.0.1 --logout >/dev/null 2>&1"
}

# iscsiadm exits 21 (no objects) when iscsid answers and there is no session, 20 when it does not answer.
_iscsid_up() {
  local rc=0
  iscsiadm -m session >/dev/null 2>&1 || rc=$?
  ((rc == 0 || rc == 21))
}

# The sysfs folder of our iSCSI session, if logged in.
_tgt_session() {
  local s
  for s in /sys/class/iscsi_session/session*; do
    [[ -f $s/targetname && $(<"$s/targetname") == "$TGT_IQN" ]] && {
      echo "$s"
      return 0
    }
  done
  return 1
}

# _tgt_nst LUN: the nstN of that LUN of our session, if the st driver has made it.
_tgt_nst() {
  local session dev name
  session=$(_tgt_session) || return 1
  for dev in "$(readlink -f "$session/device")"/target*/*:"$1"/scsi_tape/nst*; do
    name=$(basename "$dev")
    [[ $name =~ ^nst[0-9]+$ && -c /dev/$name ]] && {
      echo "/dev/$name"
      return 0
    }
  done
  return 1
}

# tgt_add_tape SIZE_MIB IMAGE_FILE [BARCODE]: a new blank tape of SIZE_MIB as the next LUN; prints
# its /dev/nstN, found by LUN in sysfs.
tgt_add_tape() {
  local size=$1 image=$2 lun
  lun=$(($(<"$WORK/.tgt/last-lun") + 1))
  echo "$lun" >"$WORK/.tgt/last-lun"
  tgtimg --op new --device-type tape --barcode "${3:-TAPE$lun}" --size "$size" --type data --file "$image" >&2 ||
    fail "tgtimg could not make $image"
  tgtadm --lld iscsi --mode logicalunit --op new --tid 1 --lun "$lun" --bstype ssc --device-type tape \
    --backing-store "$image" >&2 || fail "tgtadm could not add $image as LUN $lun"
  if _tgt_session >/dev/null; then
    iscsiadm -m node -T "$TGT_IQN" -p 127.0.0.1 --rescan >&2 || fail "iscsiadm rescan failed"
  else
    iscsiadm -m discovery -t sendtargets -p 127.0.0.1 >&2 || fail "iSCSI discovery failed"
    iscsiadm -m node -T "$TGT_IQN" -p 127.0.0.1 --login >&2 || fail "iSCSI login failed"
  fi
  local nst
  wait_for 30 _tgt_nst "$lun" || fail "no st device appeared for LUN $lun ($image)"
  nst=$(_tgt_nst "$lun")
  echo "tgt: LUN $lun ($image, $size MiB) is $nst" >&2
  echo "$nst"
}

# tgt_eject LUN: takes the cartridge out of the LUN's drive (the LUN goes offline: "medium not
# present"). tgt 1.0.85 does not eject on MTOFFL by itself: after `mt offline` the drive still
# reports the same cartridge online, so a test that plays the operator ejects with this.
tgt_eject() {
  tgtadm --lld iscsi --mode logicalunit --op update --tid 1 --lun "$1" --params online=0 >&2 ||
    fail "tgtadm could not take LUN $1 offline"
}

# tgt_insert LUN IMAGE_FILE: puts a cartridge (a tgtimg image) into the LUN's empty drive: `--op
# update --params path=FILE` opens the new image at its beginning and brings the LUN online. tgt
# raises no unit attention for it, so st only notices at the next MTLOAD (which readers and the nst:
# sink issue).
tgt_insert() {
  tgtadm --lld iscsi --mode logicalunit --op update --tid 1 --lun "$1" --params "path=$2" >&2 ||
    fail "tgtadm could not load $2 into LUN $1"
}

# tgt_swap_tape LUN IMAGE_FILE: a changer's swap, at once: eject, then insert another cartridge.
tgt_swap_tape() {
  tgt_eject "$1"
  tgt_insert "$1" "$2"
}
