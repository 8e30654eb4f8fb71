#!/usr/bin/env bash
# Builds the kernel rig once and prints the folder that holds it: a QEMU guest with Debian 12's own
# kernel (CUSE, st, sg, iSCSI, 9p as modules), a tiny initramfs that mounts the root file system,
# and an ext4 root file system with tgt, open-iscsi, mt-st and fuse3 (tests/kernel/README.md).
#
# The rig lives outside the repository, in $TAPEPROXY_RIG_CACHE (default
# /var/cache/tapeproxy-kernel-rig), in a folder named after a hash of this recipe (this script and
# the initramfs init), so a changed recipe builds a new rig and an unchanged one is reused. It is
# built in a temporary folder and renamed into place, so an interrupted build leaves no half rig.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TAPEPROXY_RIG_CACHE:-/var/cache/tapeproxy-kernel-rig}
key=$(cat "$here/build.sh" "$here/initramfs-init.sh" | sha256sum | cut -c1-16)
rig=$cache/rig-$key

log() { echo "rig: $*" >&2; }
die() { log "$*"; exit 1; }

if [[ -f $rig/complete ]]; then
  echo "$rig"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "building the kernel rig needs root (debootstrap); run as root or set TAPEPROXY_SKIP_KERNEL_RIG=1"
for tool in qemu-system-x86_64 debootstrap busybox cpio mkfs.ext4 depmod modprobe dpkg apt-get gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing: scripts/setup.sh installs it"
done
# The initramfs runs busybox before any library is there.
busybox_bin=$(command -v busybox)
[[ $(ldd "$busybox_bin" 2>&1 || true) == *'not a dynamic executable'* ]] || die "$busybox_bin is not static: the initramfs needs busybox-static"

mkdir -p "$cache"
# One build at a time; a second caller waits and then finds the rig built.
exec 9>"$cache/.lock"
flock 9
if [[ -f $rig/complete ]]; then
  echo "$rig"
  exit 0
fi
# Under the lock, leftovers of interrupted builds are nobody's.
rm -rf "$cache"/.build-*

tmp=$(mktemp -d "$cache/.build-XXXXXX")
chmod 755 "$tmp" # apt-get download drops to the _apt user, which must be able to write here
bg_pid=
cleanup() {
  if [[ -n $bg_pid ]]; then kill "$bg_pid" 2>/dev/null || true; wait "$bg_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
started=$SECONDS

# The Debian mirror the host already uses (deb822 .sources first, then one-line lists).
mirror=${TAPEPROXY_RIG_MIRROR:-}
if [[ -z $mirror ]]; then
  mirror=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && / bookworm( |$)/ && uri != "" { print uri; exit }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [[ -z $mirror ]]; then
  mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
[[ -n $mirror ]] || die "no Debian bookworm mirror found in /etc/apt/sources.list.d (set TAPEPROXY_RIG_MIRROR)"

# The root file system takes longest (about 40 s): it runs while the kernel is unpacked.
guest_packages=kmod,iproute2,procps,tgt,open-iscsi,mt-st,fuse3,libfuse3-3,lsscsi,sg3-utils,tar,coreutils,strace,libstdc++6
log "debootstrap bookworm from $mirror ($guest_packages)"
debootstrap --variant=minbase --include="$guest_packages" bookworm "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 &
bg_pid=$!

# Debian 12's current kernel, named by the linux-image-amd64 metapackage.
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1\.0-[0-9]+-amd64$/ { print $2; exit }'; }
kpkg=$(kernel_package)
if [[ -z $kpkg ]]; then
  apt-get update -qq
  kpkg=$(kernel_package)
fi
[[ -n $kpkg ]] || die "the package archive has no linux-image-6.1.0-*-amd64"
kver=${kpkg#linux-image-}
log "kernel $kpkg"
(cd "$tmp" && apt-get download -qq "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
debs=("$tmp"/linux-image-*.deb)
[[ -f ${debs[0]} ]] || die "apt-get download $kpkg failed"
dpkg -x "${debs[0]}" "$tmp/kernel"
rm -f "${debs[@]}"
mods=$tmp/kernel/lib/modules/$kver
[[ -f $tmp/kernel/boot/vmlinuz-$kver && -d $mods ]] || die "$kpkg has no vmlinuz-$kver or modules"
cp "$tmp/kernel/boot/vmlinuz-$kver" "$tmp/vmlinuz"
depmod -b "$tmp/kernel" "$kver"

# Initramfs: static busybox and, in load order, what mounting the root (virtio disk, ext4) and the
# 9p shares needs; virtio_ring must come before virtio (else virtio_blk: Unknown symbol
# register_virtio_driver).
initramfs_modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk
  crc16 mbcache jbd2 crc32c_generic libcrc32c ext4 netfs fscache 9pnet 9p 9pnet_virtio)
ird=$tmp/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$busybox_bin" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
cp "$here/initramfs-init.sh" "$ird/init"
chmod 755 "$ird/init"
: >"$ird/lib/modules/load-order"
for m in "${initramfs_modules[@]}"; do
  path=$(modprobe -d "$tmp/kernel" -S "$kver" --show-depends --ignore-install "$m" | awk '$1 == "insmod" { p = $2 } END { print p }')
  [[ -n $path && -f $path ]] || die "module $m not found in $kpkg"
  cp "$path" "$ird/lib/modules/"
  echo "$(basename "$path")" >>"$ird/lib/modules/load-order"
done
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$tmp/initramfs.cpio.gz"

if ! wait "$bg_pid"; then
  bg_pid=
  tail -n 30 "$tmp/debootstrap.log" >&2
  die "debootstrap failed (log above)"
fi
bg_pid=
root=$tmp/root

# Every module of the kernel, so that a case can modprobe whatever it needs (cuse, st, sg,
# iscsi_tcp, scsi_debug, loop...). The image is sparse and the guest mounts it as a snapshot.
mkdir -p "$root/lib/modules"
mv "$mods" "$root/lib/modules/$kver"
depmod -b "$root" "$kver"
rm -rf "$tmp/kernel" "$ird"
# Mount points of the shares and tmpfs folders the guest init uses; nothing of the host's apt.
mkdir -p "$root"/mnt/{repo,run,node} "$root"/app "$root"/work
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
echo tapeproxy-rig >"$root/etc/hostname"
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$tmp/packages.txt"

mkfs.ext4 -q -F -L rig-root -d "$root" "$tmp/rootfs.img" 2G >/dev/null
rm -rf "$root"

{
  echo "recipe $key"
  echo "kernel $kpkg $kver"
  echo "mirror $mirror"
  echo "built $(date -u +%FT%TZ) in $((SECONDS - started)) s"
} >"$tmp/complete.tmp"
rm -f "$tmp/debootstrap.log"
mv "$tmp/complete.tmp" "$tmp/complete"
mv -T "$tmp" "$rig"
trap - EXIT
# Rigs of older recipes are not used any more.
for old in "$cache"/rig-*; do
  [[ $old == "$rig" ]] || rm -rf "$old"
done
log "built $rig in $((SECONDS - started)) s"
echo "$rig"
