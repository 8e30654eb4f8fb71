#!/usr/bin/env bash
# Boots the kernel rig once and lets the guest run the cases listed in RUN_DIR/cases.tsv
# (tests/kernel/rig/guest-init.sh); their results land in RUN_DIR/results. The guest sees the
# repository (read-only) as /mnt/repo, RUN_DIR as /mnt/run and the folder of NODE (the host's node
# binary, which runs unchanged in the guest: same Debian 12 glibc) as /mnt/node.
# usage: boot.sh RIG_DIR RUN_DIR TIMEOUT_SECONDS [NODE]
# Exit status: 0 when the guest finished every case (whatever their results), 1 otherwise.
set -euo pipefail
rig=$1 run=$2 limit=$3 node=${4:-$(command -v node)}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
node=$(readlink -f "$node")

[[ -f $run/cases.tsv ]] || { echo "boot: $run/cases.tsv is missing" >&2; exit 1; }
for f in dist/client/tapeproxy.js cuse-shim/build/tapeproxy-shim daemon/frontends/shim/native/build/shared-ring.node package.json; do
  [[ -e $repo/$f ]] || { echo "boot: $repo/$f is missing: run npm run build first" >&2; exit 1; }
done
mkdir -p "$run/results"

# What the daemon needs, as one tar: under TCG, reading it whole over 9p and unpacking it in the
# guest's memory is much faster than loading thousands of small module files over 9p.
(
  cd "$repo"
  mapfile -t deps < <(npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$repo/||" | sort -u)
  ((${#deps[@]} > 0)) || { echo "boot: npm ls found no production dependencies" >&2; exit 1; }
  # The record ring's addon too, so that CUSE writes go through the ring there as on a host.
  tar -cf "$run/app.tar" dist package.json cuse-shim/build/tapeproxy-shim cuse-shim/build/tapeproxy-st-io \
    daemon/frontends/shim/native/build/shared-ring.node "${deps[@]}"
)

# The disk is a snapshot: every boot starts from the same root file system, and several runs may
# share one rig.
status=0
timeout --kill-after=10 "$limit" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu ${TAPEPROXY_RIG_CPU:-max} -m 3072 -smp 2 \
  -display none -monitor none -serial "file:$run/console.log" -no-reboot \
  -kernel "$rig/vmlinuz" -initrd "$rig/initramfs.cpio.gz" \
  -drive "file=$rig/rootfs.img,format=raw,if=virtio,snapshot=on" \
  -fsdev "local,id=repo,path=$repo,security_model=none,readonly=on" -device virtio-9p-pci,fsdev=repo,mount_tag=repo \
  -fsdev "local,id=node,path=$(dirname "$node"),security_model=none,readonly=on" -device virtio-9p-pci,fsdev=node,mount_tag=node \
  -fsdev "local,id=run,path=$run,security_model=none" -device virtio-9p-pci,fsdev=run,mount_tag=run \
  -nic none \
  -append "console=ttyS0 quiet loglevel=4 panic=-1" </dev/null || status=$?
rm -f "$run/app.tar"
if ((status == 124 || status == 137)); then
  echo "boot: the guest did not finish within ${limit}s and was stopped" >&2
  exit 1
fi
if [[ ! -f $run/results/done ]]; then
  echo "boot: the guest stopped before finishing its cases (qemu exit $status); console: $run/console.log" >&2
  exit 1
fi
