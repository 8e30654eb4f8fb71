# timeout: 240
# Records written through /dev/pnst0 with dd keep their boundaries and their bytes. CUSE cuts every
# read(2) and write(2) into requests of at most 128 KiB (reference section 6), so the shim must
# reassemble a record from its chunks and serve a read in chunks: 10 KiB is one chunk, 128 KiB
# exactly one full chunk (complete only when the next operation arrives), 300,000 bytes two full
# chunks and a short one, 1 MiB eight full chunks. Records of 64 KiB and more cross from the shim to
# the daemon in the shim's record ring, smaller ones on the socket; the daemon's metrics count both.
source "$CASES/lib.sh"

sizes=(10240 131072 300000 1048576)
per_file=4

start_daemon "
metrics: 127.0.0.1:0
drives:
  - name: d0
    cuse: pnst0
    sinks: ['file:$WORK/d0.tap']
"

note "writing $per_file records of each size with dd bs=SIZE, one tape file per size"
for size in "${sizes[@]}"; do
  head -c $((size * per_file)) /dev/urandom >"$WORK/in-$size"
  dd if="$WORK/in-$size" of=/dev/pnst0 bs="$size" 2>"$WORK/dd.err" || fail "dd bs=$size to /dev/pnst0: $(cat "$WORK/dd.err")"
  expect_eq "$(grep 'records out' "$WORK/dd.err")" "$per_file+0 records out" "dd bs=$size: records written"
done
expect_eq "$(mt_state /dev/pnst0)" "file=4 block=0 EOF ONLINE IM_REP_EN" "position after four files"

note "how the records crossed from the shim to the daemon (tapeproxy_shim_records_total)"
metrics=$(sed -n 's/.*"address":"\([^"]*\)".*"msg":"metrics listening .*/\1/p' "$DAEMON_LOG" | head -n 1)
[[ -n $metrics ]] || fail "no address in the daemon's 'metrics listening' line"
node -e "fetch('http://$metrics/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))" >"$WORK/metrics.txt"
grep '^tapeproxy_shim_records_total' "$WORK/metrics.txt"
# The records were assembled from CUSE's chunks, then went whole: 128 KiB, 300,000 and 1 MiB ones in the ring.
expect_eq "$(grep '^tapeproxy_shim_records_total{drive="d0",path="ring"}' "$WORK/metrics.txt")" 'tapeproxy_shim_records_total{drive="d0",path="ring"} 12' "records through the ring"
expect_eq "$(grep '^tapeproxy_shim_records_total{drive="d0",path="socket"}' "$WORK/metrics.txt")" 'tapeproxy_shim_records_total{drive="d0",path="socket"} 4' "records on the socket"

note "reading each file back with dd bs=2M: one read(2) must return exactly one record"
mt -f /dev/pnst0 rewind
for size in "${sizes[@]}"; do
  dd if=/dev/pnst0 of="$WORK/out-$size" bs=2M 2>"$WORK/dd.err" || fail "dd bs=2M from /dev/pnst0: $(cat "$WORK/dd.err")"
  # A read shorter than bs counts as a partial record: four records of SIZE < 2M are 0+4.
  expect_eq "$(grep 'records in' "$WORK/dd.err")" "0+$per_file records in" "dd bs=2M: reads of the file of $size-byte records"
  cmp "$WORK/in-$size" "$WORK/out-$size" || fail "the $size-byte records read back differ from those written"
  echo "ok: the $size-byte records read back are the bytes written"
done

note "the size of every read(2), one by one"
mt -f /dev/pnst0 rewind
reads=()
for size in "${sizes[@]}"; do
  for ((i = 0; i < per_file; i++)); do reads+=(read:2097152); done
  reads+=(read:2097152) # the filemark: 0
done
perl "$TAPE_OPS" /dev/pnst0 open:r "${reads[@]}" >"$WORK/reads.trace"
cat "$WORK/reads.trace"
expected=("open:r = ok")
for size in "${sizes[@]}"; do
  for ((i = 0; i < per_file; i++)); do expected+=("read:2097152 = $size"); done
  expected+=("read:2097152 = 0")
done
diff -u <(printf '%s\n' "${expected[@]}") "$WORK/reads.trace" || fail "the reads did not return one record each (- expected, + got)"

note "the records in the image sink"
stop_daemon
tapeproxy image ls --records "$WORK/d0.tap" >"$WORK/image.ls"
grep -v '^  record' "$WORK/image.ls"
for i in "${!sizes[@]}"; do
  size=${sizes[i]}
  # image ls counts tape files from 1
  expect_eq "$(grep "^file $((i + 1)):" "$WORK/image.ls")" "file $((i + 1)): unknown, $per_file records, $((size * per_file)) bytes ($size x$per_file)" "image file $((i + 1))"
done
