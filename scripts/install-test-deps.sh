#!/bin/sh
# Installs what the test suite needs on Debian, as root. Safe to run again.
#  - curl: tests ask the socket from inside containers with curl, as users do;
#  - util-linux (unshare, nsenter, setpriv) and perl-base: the container launcher and
#    the tests; both are part of every Debian system, listed to be sure;
#  - procps (pgrep): the hook tests find the init of a namespace they made;
#  - lxc and busybox-static: the LXC tests (`lxc-create -t busybox` works offline);
#  - crun and runc: the OCI hook tests, run with each;
#  - podman: the podman tests (its own crun; runc where crun cannot run, with hybrid cgroups);
#  - debootstrap: scripts/build-test-rootfs.sh builds, once, the Debian root filesystem with
#    systemd and cloud-init that the end-to-end tests boot in LXC containers;
#  - cloud-init: the tests run its LXD datasource's reading code on this machine, never a
#    boot (cloud-init boots only inside those containers);
#  - python3-jwt and python3-cryptography: PyJWT, the verifier devapollo did not write that
#    the identity token tests check tokens with (ES256 needs cryptography, only recommended).
set -eu
if [ "$(id -u)" -ne 0 ]; then
  echo "Error: run as root (the tests start real containers)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# cloud-init must never run on this machine: a boot would rewrite the host's hostname and
# network. This file disables it whatever the init system (cloud-init's generator and its
# services check it), and is in place before the package is.
mkdir -p /etc/cloud
touch /etc/cloud/cloud-init.disabled
missing=""
for pkg in curl util-linux perl-base ca-certificates procps lxc busybox-static crun runc podman debootstrap cloud-init python3-jwt python3-cryptography; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  # No service may start while installing (lxc-net would add a bridge to the host's
  # network, podman's units a socket): policy-rc.d answers "denied" to every start; one
  # we put there goes at exit.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
  fi
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
# The subordinate range devapollo maps unprivileged containers to (as LXD does).
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  grep -q '^root:' "$f" || echo 'root:1000000:1000000000' >> "$f"
done
