#!/usr/bin/env node
// One worker thread waits on container exits for the daemon's whole life: leave room for fs work.
process.env.UV_THREADPOOL_SIZE ??= '8';
import('../dist/server/cli/main.js').then((cli) => cli.main());
