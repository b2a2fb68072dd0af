#!/bin/sh
# Builds, once, the Debian root filesystem the end-to-end tests boot (systemd, Debian's
# cloud-init unchanged, curl), and prints its path. As root.
#
#   scripts/build-test-rootfs.sh [--if-possible]
#
# It is cached outside the checkout, keyed by what it is built from (suite, mirror,
# architecture, packages and this script's text), so that every test of every `npm test`
# reuses it until one of those changes. It is built in a scratch directory and renamed into
# place when complete: a half-built tree (an interrupted run, a full disk) is never taken
# for a cached one, and the next run removes it. One build at a time (flock): test files
# that start at once wait for the first one's build and then share it. Builds of other keys
# are left alone (another checkout may be using one); `rm -rf /var/cache/devapollo-test`
# reclaims the space.
#
# With --if-possible (what `npm test` runs first), a machine that cannot build it (not
# root, no debootstrap) is no error: the tests that need it are skipped with the reason.
#
#   DEVAPOLLO_TEST_CACHE   the cache directory (default /var/cache/devapollo-test)
#   DEVAPOLLO_TEST_MIRROR  the Debian mirror (default: the host's, from /etc/apt/sources.list.d/)
set -eu
if [ "${1:-}" = "--if-possible" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v debootstrap >/dev/null 2>&1; then
    echo "the Debian test root filesystem needs root and debootstrap: its tests will be skipped" >&2
    exit 0
  fi
elif [ -n "${1:-}" ]; then
  echo "Error: unknown argument $1 (usage: $0 [--if-possible])" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Error: run as root (debootstrap and chroot)" >&2
  exit 1
fi
cache=${DEVAPOLLO_TEST_CACHE:-/var/cache/devapollo-test}
suite=bookworm
arch=$(dpkg --print-architecture)
host_mirror() {
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] && awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' "$f"
  done | head -n 1
}
mirror=${DEVAPOLLO_TEST_MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
# systemd-sysv makes systemd PID 1 (/sbin/init); cloud-init's locale module fails the boot
# ("status: error") without locales and a generated en_US.UTF-8; curl is what the tests ask
# the socket with, as users do.
packages="systemd systemd-sysv cloud-init locales curl"
key=$({ echo "$suite $mirror $arch $packages"; cat "$0"; } | sha256sum | cut -c1-16)
root="$cache/debian-$suite-$arch-$key"

mkdir -p "$cache"
chmod 0755 "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -d "$root" ]; then
  echo "$root"
  exit 0
fi
# Under the lock nobody builds: a scratch directory left is a failed or interrupted build.
rm -rf "$cache"/*.partial

scratch="$root.partial"
log="$cache/build.log"
mkdir "$scratch"
started=$(date +%s)
echo "building the Debian test root filesystem from $mirror, once (log: $log)" >&2
fail() {
  echo "Error: building the Debian test root filesystem failed ($1); the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
}
debootstrap --variant=minbase --arch="$arch" "$suite" "$scratch" "$mirror" > "$log" 2>&1 || fail debootstrap

# Inside the chroot: no service may start (policy-rc.d), /proc only in a private mount
# namespace (gone with it, whatever happens), resolv.conf for apt only.
printf '#!/bin/sh\nexit 101\n' > "$scratch/usr/sbin/policy-rc.d"
chmod 0755 "$scratch/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$scratch/etc/resolv.conf"
# shellcheck disable=SC2016,SC2086
unshare -m --propagation private sh -eu -c '
  scratch=$1
  shift
  mount -t proc proc "$scratch/proc"
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C
  chroot "$scratch" apt-get update -qq
  chroot "$scratch" apt-get install -y -qq --no-install-recommends "$@"
  sed -i "s/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/" "$scratch/etc/locale.gen"
  chroot "$scratch" locale-gen
  chroot "$scratch" update-locale LANG=en_US.UTF-8
  chroot "$scratch" apt-get clean
' sh "$scratch" $packages >> "$log" 2>&1 || fail "apt-get install $packages"
rm -f "$scratch/usr/sbin/policy-rc.d" "$scratch/etc/resolv.conf"
rm -rf "$scratch/var/lib/apt/lists"/*
# A container boots this tree as a new machine: no machine-id (systemd makes one at the
# first boot), no name of the host's.
: > "$scratch/etc/machine-id"
echo localhost > "$scratch/etc/hostname"
# The host disables its own cloud-init with this file; the container's must run.
rm -f "$scratch/etc/cloud/cloud-init.disabled"
sync -f "$scratch"
mv "$scratch" "$root"
echo "built $root in $(($(date +%s) - started)) s" >&2
echo "$root"
