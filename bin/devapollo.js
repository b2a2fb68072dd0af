#!/usr/bin/env -S node --max-semi-space-size=4
// --max-semi-space-size=4: V8's young generation stays at 4 MiB a half instead of growing to
// 16 MiB under load, which keeps the daemon's resident memory down at 10,000 containers.
// The price is a little more garbage collection on new connections (docs/PERFORMANCE.md).
// One worker thread waits on container exits for the daemon's whole life: leave room for fs work.
process.env.UV_THREADPOOL_SIZE ??= '8';
import('../dist/server/cli/main.js').then((cli) => cli.main());
