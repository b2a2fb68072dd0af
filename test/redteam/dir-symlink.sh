#!/bin/sh
# Throwaway repro (redteam1): --dir in a world-writable directory.
mkdir -m 700 /tmp/rt-victimdir
su nobody -s /bin/sh -c 'ln -s /tmp/rt-victimdir /tmp/rt-sym-nobody'
timeout 5 devapollo serve --dir /tmp/rt-sym-nobody
stat -c '%a %U %n' /tmp/rt-victimdir; ls /tmp/rt-victimdir      # 711 root; containers devapollo logs stage ...
