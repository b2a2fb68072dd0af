#!/bin/sh
# Installs what the test suite needs on Debian, as root. Safe to run again.
#  - curl: tests ask the socket from inside containers with curl, as users do;
#  - util-linux (unshare, nsenter, setpriv) and perl-base: the container launcher and
#    the tests; both are part of every Debian system, listed to be sure.
set -eu
if [ "$(id -u)" -ne 0 ]; then
  echo "Error: run as root (the tests start real containers)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
missing=""
for pkg in curl util-linux perl-base ca-certificates; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
# The subordinate range devapollo maps unprivileged containers to (as LXD does).
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  grep -q '^root:' "$f" || echo 'root:1000000:1000000000' >> "$f"
done
