// Bundles the guest CLI into one dependency-free file, dist/devapollo-guest.cjs: it starts
// faster (one file, and CommonJS, which Node loads without its ES module loader) and can
// be copied into any container that has Node.
import { build } from 'esbuild';
import fs from 'node:fs';

const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const outfile = new URL('../dist/devapollo-guest.cjs', import.meta.url).pathname;
await build({
  entryPoints: [new URL('../dist/client/entry.js', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile,
  // The ES modules inside (yargs among them) read import.meta.url: give them this file's.
  define: { __APOLLO_VERSION__: JSON.stringify(version), 'import.meta.url': '__apolloFileUrl' },
  banner: { js: '#!/usr/bin/env node\nconst __apolloFileUrl = require("node:url").pathToFileURL(__filename).href;' },
  legalComments: 'none',
  logLevel: 'warning',
});
fs.chmodSync(outfile, 0o755);
