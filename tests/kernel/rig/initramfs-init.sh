#!/bin/sh
# /init of the kernel rig's initramfs (static busybox): loads what reaching the root disk and the
# 9p shares needs, mounts them, and hands over to the guest init that lives in the repository share
# (tests/kernel/rig/guest-init.sh), so that changing that needs no rebuild of the rig.
export PATH=/bin
bb=/bin/busybox
halt() {
  echo "rig initramfs: $*"
  echo o >/proc/sysrq-trigger
  $bb sleep 60
}
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in $($bb cat /lib/modules/load-order); do
  $bb insmod "/lib/modules/$m" || halt "insmod $m failed"
done
# virtio devices are probed asynchronously.
n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do $bb usleep 50000; n=$((n + 1)); done
$bb mount -t ext4 /dev/vda /newroot || halt "cannot mount the root file system /dev/vda"
# The repository and the node binary are read-only and do not change during a run: cached reads.
$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro repo /newroot/mnt/repo || halt "cannot mount the repo share"
$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro node /newroot/mnt/node || halt "cannot mount the node share"
$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 run /newroot/mnt/run || halt "cannot mount the run share"
$bb mount --move /dev /newroot/dev
$bb umount /sys
$bb umount /proc
exec $bb switch_root /newroot /bin/bash /mnt/repo/tests/kernel/rig/guest-init.sh
