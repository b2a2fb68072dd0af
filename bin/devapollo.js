#!/usr/bin/env -S node --max-semi-space-size=2
// --max-semi-space-size=2: V8's young generation stays at 2 MiB a half instead of growing to
// 16 MiB under load. The daemon's requests leave short-lived garbage only; the cap keeps its
// resident memory about 20 MiB lower at 10,000 containers (docs/PERFORMANCE.md).
// One worker thread waits on container exits for the daemon's whole life: leave room for fs work.
process.env.UV_THREADPOOL_SIZE ??= '8';
import('../dist/server/cli/main.js').then((cli) => cli.main());
