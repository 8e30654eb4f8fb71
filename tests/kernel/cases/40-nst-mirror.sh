# timeout: 600
# tar -c -M into /dev/pnst0 (CUSE), mirrored to two real st drives of different sizes (tgt tapes of
# 16 and 24 MiB, as nst: sinks) and one image file: logical end of tape comes at the smaller
# drive's early warning; at the lockstep volume change each drive unloads and the changer command
# swaps its cartridge; the archive continues on volume 2. Then every copy alone restores the tree,
# and the image and both tapes hold the same records, volume by volume.
source "$CASES/lib.sh"
MiB=$((1 << 20))

tgt_start
a=$(tgt_add_tape 16 "$WORK/a-1.img" A1)
b=$(tgt_add_tape 24 "$WORK/b-1.img" B1)

# The test's changer: changer.sh DEVICE VOLUME puts cartridge NAME-VOLUME.img into that drive (a new
# blank tape the first time), through tgt (lib.sh tgt_swap_tape).
cat >"$WORK/changer.sh" <<EOF
source "\$CASES/lib.sh"
case \$1 in
  $a) lun=1 name=a size=16 ;;
  $b) lun=2 name=b size=24 ;;
  *) fail "changer: unknown drive \$1" ;;
esac
image=$WORK/\$name-\$2.img
[[ -f \$image ]] || tgtimg --op new --device-type tape --barcode "\${name^^}\$2" --size "\$size" --type data --file "\$image"
tgt_swap_tape "\$lun" "\$image"
echo "changer: \$image is in \$1" >>"$WORK/changer.log"
EOF
changer="changer=bash+$WORK/changer.sh+%d+%v&load-timeout=120"

mkdir -p "$WORK/src/sub"
for i in $(seq 1 11); do head -c $((2 * MiB)) /dev/urandom >"$WORK/src/f$i"; done
for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom >"$WORK/src/sub/small$i"; done

# The drives take 2 MiB past early warning (so says the config): that bounds what is in flight.
start_daemon "
drives:
  - name: d0
    cuse: pnst0
    sinks:
      - 'nst:$a?early-warning=2M&$changer'
      - 'nst:$b?early-warning=2M&$changer'
      - 'file:$WORK/img-%v.tap'
"
note "tar -c -M through /dev/pnst0 onto $a, $b and an image"
(cd "$WORK" && tar -c -M -F true -f /dev/pnst0 src) || fail "tar -c -M failed"
expect_eq "$(grep -c 'is in' "$WORK/changer.log")" 2 "changer runs (one per drive for volume 2)"
status=$(tapeproxy status d0)
echo "$status"
expect_match "$status" "nst:$a: volume 2" "drive a is on volume 2"
stop_daemon

[[ -f $WORK/img-2.tap && ! -f $WORK/img-3.tap ]] || fail "expected exactly two image volumes"

# Every copy's records, volume by volume. A tape is read on its own drive after the daemon let go.
hashes() { node "$CASES/record-hashes.mjs" "$1" >"$2" || fail "reading $1 failed"; }
for v in 1 2; do
  hashes "$WORK/img-$v.tap" "$WORK/img-$v.hashes"
  mt -f "$a" offline && tgt_swap_tape 1 "$WORK/a-$v.img" && hashes "$a" "$WORK/a-$v.hashes"
  mt -f "$b" offline && tgt_swap_tape 2 "$WORK/b-$v.img" && hashes "$b" "$WORK/b-$v.hashes"
  for copy in a b; do
    cmp -s "$WORK/img-$v.hashes" "$WORK/$copy-$v.hashes" ||
      fail "volume $v: tape $copy differs from the image: $(diff "$WORK/img-$v.hashes" "$WORK/$copy-$v.hashes" | head -5)"
  done
  note "volume $v: $(grep -vc FM "$WORK/img-$v.hashes") records, the same on the image and both tapes"
done

# Logical EOT at the smaller drive's early warning (16 MiB), not the bigger one's (24 MiB): volume 1
# holds 16 MiB plus at most what was in flight (2 MiB).
bytes1=$(awk '$1 != "FM" { n += $1 } END { print n }' "$WORK/img-1.hashes")
note "volume 1 holds $bytes1 bytes"
((bytes1 > 15 * MiB && bytes1 < 19 * MiB)) || fail "volume 1 holds $bytes1 bytes: not the 16 MiB drive's early warning"

# Each copy alone restores the tree (tar -x -M follows the archive onto volume 2).
restore() {
  local name=$1 sink=$2
  start_daemon "
drives:
  - name: r0
    cuse: pnst1
    sinks: ['$sink']
"
  mkdir -p "$WORK/out-$name"
  (cd "$WORK/out-$name" && tar -x -M -F true -f /dev/pnst1) || fail "tar -x -M from copy $name failed"
  stop_daemon
  diff -r "$WORK/src" "$WORK/out-$name/src" >/dev/null || fail "copy $name restored a different tree"
  note "copy $name restores the tree alone"
}
restore image "file:$WORK/img-%v.tap?readonly"
mt -f "$a" offline && tgt_swap_tape 1 "$WORK/a-1.img"
restore a "nst:$a?readonly&$changer"
mt -f "$b" offline && tgt_swap_tape 2 "$WORK/b-1.img"
restore b "nst:$b?readonly&$changer"
