# timeout: 240
# Early warning through CUSE: dd writing to /dev/pnstN past the early-warning point of a small file
# sink must stop with write(2) = -1 ENOSPC ("No space left on device"), never a short write: the
# shim acknowledges records before the daemon has them (write-behind) only while no record can
# reach early warning, and a record of several 128 KiB chunks must get its errno on its first chunk
# (an errno on a later chunk becomes a short write, reference section 6). Then, in one open, writes
# alternate success / ENOSPC as st's do, until the sink's capacity refuses every write.
source "$CASES/lib.sh"

sizes=(65536 300000 1048576)

# Per size: early warning after 16 records, room for 8 more records past it (SIMH adds 8 bytes a
# record, 4 a filemark). No autoload: the second open must stay on the same volume. The drive's
# largest record is the size written: a record longer than one CUSE chunk is judged on its first
# chunk as if it were the largest (proto/shim-frames.md "CUSE chunks"), so with the default 1 MiB
# the 300,000-byte records would meet the physical end 1 MiB early.
config="drives:"
for i in "${!sizes[@]}"; do
  framed=$((sizes[i] + 8))
  config+="
  - name: d$i
    cuse: pnst$i
    autoload: false
    max-record: ${sizes[i]}
    sinks: ['file:$WORK/d$i.tap?capacity=$((24 * framed))&early-warning=$((8 * framed))']"
done
start_daemon "$config"

for i in "${!sizes[@]}"; do
  size=${sizes[i]} dev=/dev/pnst$i
  note "$size-byte records: dd to $dev until early warning"
  rc=0
  dd if=/dev/zero of="$dev" bs="$size" count=1000 2>"$WORK/dd.err" || rc=$?
  cat "$WORK/dd.err"
  ((rc != 0)) || fail "dd wrote 1000 records of $size bytes without an error past early warning"
  grep -q "error writing '$dev': No space left on device" "$WORK/dd.err" || fail "dd did not fail with ENOSPC"
  out=$(grep 'records out' "$WORK/dd.err")
  expect_match "$out" '^[1-9][0-9]*\+0 records out$' "dd's records out (no partial record: no short write)"
  written=${out%%+*}

  note "$size-byte records: one open, write after write past early warning"
  writes=()
  for ((n = 0; n < 24; n++)); do writes+=("write:$size"); done
  perl "$TAPE_OPS" "$dev" "${writes[@]}" close >"$WORK/ops.trace"
  cat "$WORK/ops.trace"
  results=$(grep '^write:' "$WORK/ops.trace" | sed 's/^write:[0-9]* = //' | tr '\n' ' ')
  # ok ENOSPC ok ENOSPC ... while there is room, then only ENOSPC; every success a whole record.
  pattern="^($size -1 ENOSPC )+(-1 ENOSPC )*$"
  expect_match "$results" "$pattern" "write results past early warning"
  appended=$(grep -c "^write:$size = $size$" "$WORK/ops.trace")

  note "$size-byte records: what the image holds"
  tapeproxy image ls "$WORK/d$i.tap" | tee "$WORK/image.ls"
  # image ls counts tape files from 1
  expect_eq "$(grep '^file 1:' "$WORK/image.ls")" "file 1: unknown, $written records, $((written * size)) bytes ($size x$written)" "image file 1 (dd)"
  expect_eq "$(grep '^file 2:' "$WORK/image.ls")" "file 2: unknown, $appended records, $((appended * size)) bytes ($size x$appended)" "image file 2 (the writes past early warning)"
  image_bytes=$(stat -c %s "$WORK/d$i.tap")
  ((image_bytes <= 24 * (size + 8))) || fail "the image ($image_bytes bytes) outgrew its capacity"
done
