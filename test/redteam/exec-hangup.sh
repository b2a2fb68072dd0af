#!/bin/sh
# Throwaway repro (redteam1): a daemon on $APOLLO_DIR with a running container c1.
cd "$(dirname "$0")/../.."
perl test/helpers/pty.pl 24 80 -- node bin/devapollo.js exec -t c1 -- sh -c 'trap "" HUP TERM INT QUIT; echo started; exec sleep 1000' </dev/null &
PTY=$!; sleep 3
CLI=$(pgrep -f "bin/devapollo.js exec -t c1" | head -1)
kill -HUP $CLI; kill -TERM $CLI; kill -INT $CLI; sleep 1; ps -o pid,stat,cmd -p $CLI   # still there
kill $PTY; sleep 2; ps -o pid,rss,cmd -p $CLI; pgrep -af "exec.pl --pid"                # the terminal is gone; both stay
kill -9 $CLI; sleep 1; pgrep -af "exec.pl --pid"                                        # the helper stays even now
