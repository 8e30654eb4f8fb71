#!/usr/bin/env bash
# Installs what tapeproxy needs on Debian 12 with Node 20 (as root): Debian packages when missing,
# npm ci when node_modules is missing or older than the lock file, then the build. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

# protobuf-compiler: protoc for the build (ts-proto is its plugin)
# simh: mtdump, which the tests use to check that images are valid SIMH tapes
# gcc, make, pkg-config, libfuse3-dev: the C shim's build; g++: the addons' (the record ring's is C++);
# fuse3: FUSE mounts at run time;
# valgrind: the shim's C unit tests also run under it
# tar, cpio, dump (dump/restore), e2fsprogs (mkfs.ext4 -d), mt-st: the real tools the tests drive;
# procps (pgrep) for finding the shim; mbuffer: the benchmark's peer
# bindfs: a FUSE file system the stall test freezes (SIGSTOP) under an image copy
# qemu-system-x86, debootstrap, busybox-static, kmod: the kernel rig (tests/kernel), a QEMU guest
# with Debian's kernel for CUSE and real st drives, built once into /var/cache/tapeproxy-kernel-rig
# tmux: the watch test runs `tapeproxy watch` in a real terminal; systemd (systemd-analyze verify,
# security) and udev (udevadm test): the deploy test checks deploy/'s unit and udev rule
# clang, libclang-rt-14-dev (libFuzzer and the sanitizers' runtimes): the C shim's fuzzers (make -C cuse-shim fuzz)
PACKAGES=(protobuf-compiler simh gcc g++ make libc6-dev pkg-config libfuse3-dev fuse3 valgrind tar cpio dump e2fsprogs mt-st procps mbuffer
  qemu-system-x86 debootstrap busybox-static kmod tmux systemd udev
  bindfs clang libclang-rt-14-dev)
# remote sinks (tests/integration/remote-*): docker.io runs a remote tapeproxy in a container (the
# tests start their own dockerd; its base image comes from debootstrap), openssh-server is the sshd
# on loopback that GNU rmt (/usr/sbin/rmt-tar, from tar) is reached through; dump's rmt is
# /usr/sbin/rmt-dump; iproute2 cuts links in network namespaces, openssl makes the test certificates
PACKAGES+=(docker.io openssh-server iproute2 openssl)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: these Debian packages are needed: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
