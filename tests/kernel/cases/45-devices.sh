# timeout: 120
# tapeproxy devices finds the st drives the kernel made for two tgt tapes, with the same nodes and
# names lsscsi --generic shows.
source "$CASES/lib.sh"

tgt_start
a=$(tgt_add_tape 16 "$WORK/a.img")
b=$(tgt_add_tape 16 "$WORK/b.img")
lsscsi --generic
table=$(tapeproxy devices)
echo "$table"
json=$(tapeproxy devices --json)
for dev in "$a" "$b"; do
  # lsscsi --generic: [H:C:T:L]  tape  VENDOR  MODEL  REV  /dev/stN  /dev/sgN
  st=${dev/nst/st}
  line=$(lsscsi --generic | grep -F " $st ") || fail "lsscsi does not list $st"
  address=$(sed 's/^\[\([^]]*\)\].*/\1/' <<<"$line")
  sg=$(awk '{ print $NF }' <<<"$line")
  vendor=$(awk '{ print $3 }' <<<"$line")
  record=$(node -e '
    const [json, address] = process.argv.slice(1);
    const d = JSON.parse(json).find((d) => d.address === address);
    if (d) console.log([d.type, d.vendor, d.st, d.nst, d.sg, d.sink].join(" "));
  ' "$json" "$address")
  expect_eq "$record" "tape $vendor $st $dev $sg nst:$dev" "tapeproxy devices for $address"
  expect_match "$table" "$address +tape +$vendor .* $st +$dev +$sg +nst:$dev" "the table line for $address"
done
