#!/usr/bin/env bash
# Builds the root file system of the test host: Debian bookworm (systemd 252, the version Amazon Linux
# 2023 ships) with systemd as PID 1, booted by test/helpers/host.ts under systemd-nspawn as the
# stand-in for the EC2 instance. Run by `make test` (through the Makefile's rule for DIR) once; the
# result is cached in DIR and reused until removed (`rm -rf .cache/test-host`).
#
#   test/helpers/host-rootfs.sh DIR
set -euo pipefail

dir=${1:?usage: host-rootfs.sh DIR}
[[ -f $dir/etc/os-release ]] && exit 0

if [[ $(id -u) != 0 ]]; then
  echo "the test host needs root: debootstrap and systemd-nspawn run as root (run make test as root)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
  echo "installing debootstrap and systemd-container (Debian packages) for the test host..." >&2
  if ! command -v apt-get >/dev/null ||
    ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container; } >&2; then
    echo "missing prerequisite: debootstrap and systemd-nspawn; install them: apt-get install debootstrap systemd-container" >&2
    exit 1
  fi
fi

# The Debian mirror apt already uses on this machine (deb822 or one-line sources), else Debian's own.
mirror=$(sed -nE 's/^URIs:[[:space:]]*([^[:space:]]*\/debian)\/?$/\1/p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]*\/debian)\/?[[:space:]]+bookworm[[:space:]].*/\2/p' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

# Built beside DIR and renamed into place, so an interrupted build never leaves a half tree in DIR.
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$dir.building.XXXXXX")
chmod 0755 "$tmp" # the root folder: mktemp makes it 0700, which locks every non-root user out
trap 'rm -rf "$tmp"' EXIT
echo "building the test host's root file system (debootstrap bookworm from $mirror, about a minute)..." >&2
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates \
  bookworm "$tmp" "$mirror" >"$tmp.log" 2>&1; then
  tail -n 20 "$tmp.log" >&2
  echo "debootstrap failed (log above, full log in $tmp.log)" >&2
  exit 1
fi
rm -f "$tmp.log"
# A user with a home folder, for agents writing under /home/<user>/, as ec2-user on Amazon Linux.
chroot "$tmp" useradd --create-home --shell /bin/bash ec2-user
# No console login prompts and no waiting for a network that nspawn's shared network never reports.
chroot "$tmp" systemctl mask console-getty.service getty@tty1.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo "random-number-test-host" >"$tmp/etc/hostname"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "test host root file system ready in $dir" >&2
