// Bundles the guest CLI into one dependency-free file, dist/devapollo-guest.mjs: it starts
// faster (one file to load) and can be copied into any container that has Node.
import { build } from 'esbuild';
import fs from 'node:fs';

const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const outfile = new URL('../dist/devapollo-guest.mjs', import.meta.url).pathname;
await build({
  entryPoints: [new URL('../dist/client/entry.js', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile,
  define: { __APOLLO_VERSION__: JSON.stringify(version) },
  banner: { js: '#!/usr/bin/env node\nimport { createRequire as __apolloRequire } from "node:module"; const require = __apolloRequire(import.meta.url);' },
  legalComments: 'none',
  logLevel: 'warning',
});
fs.chmodSync(outfile, 0o755);
