// @ts-check
// Bundles the guest CLI into one dependency-free file, dist/devapollo-guest.cjs: it starts
// faster (one file, and CommonJS, which Node loads without its ES module loader) and can
// be copied into any container that has Node.
//
// `devapollo-guest get KEY` runs in loops in boot scripts, so its start-up is what counts.
// Node compiles the whole file it loads, and the full CLI (yargs, yaml, cli-table3, chalk)
// is most of it: about 12 ms of a cold `get`. So the full CLI is bundled on its own and
// embedded as a string, which V8 only has to scan; the entry's `import('./main.js')`
// compiles it on first use, which `get` never makes (src/client/entry.ts).

import fs from 'node:fs';
import { build } from 'esbuild';

const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const outfile = new URL('../dist/devapollo-guest.cjs', import.meta.url).pathname;
/** @type {import('esbuild').BuildOptions} */
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The ES modules inside (yargs among them) read import.meta.url: give them this file's.
  define: { __APOLLO_VERSION__: JSON.stringify(version), 'import.meta.url': '__apolloFileUrl' },
  legalComments: 'none',
  logLevel: 'warning',
};

const cli = await build({
  ...common,
  entryPoints: [new URL('../dist/client/main.js', import.meta.url).pathname],
  write: false,
});
const cliOutput = cli.outputFiles?.[0];
if (cliOutput === undefined) throw new Error('esbuild wrote no bundle of dist/client/main.js');
const cliSource = cliOutput.text;

/** Resolves the entry's `./main.js` to a module that compiles the embedded CLI when loaded. */
/** @type {import('esbuild').Plugin} */
const embeddedCli = {
  name: 'embedded-cli',
  setup(builder) {
    builder.onResolve({ filter: /^\.\/main\.js$/ }, (args) =>
      args.importer.endsWith('/client/entry.js') ? { path: 'main.js', namespace: 'embedded-cli' } : undefined,
    );
    builder.onLoad({ filter: /.*/, namespace: 'embedded-cli' }, () => ({
      loader: 'js',
      contents: [
        `const source = ${JSON.stringify(cliSource)};`,
        // The same module scope a CommonJS file gets, plus the file URL the banner defines.
        "const wrapper = '(function (exports, require, module, __filename, __dirname, __apolloFileUrl) {' + source + '\\n})';",
        'const cli = { exports: {} };',
        "require('node:vm').runInThisContext(wrapper, { filename: __filename })(cli.exports, require, cli, __filename, __dirname, __apolloFileUrl);",
        'module.exports = cli.exports;',
      ].join('\n'),
    }));
  },
};

await build({
  ...common,
  entryPoints: [new URL('../dist/client/entry.js', import.meta.url).pathname],
  outfile,
  plugins: [embeddedCli],
  banner: { js: '#!/usr/bin/env node\nconst __apolloFileUrl = require("node:url").pathToFileURL(__filename).href;' },
});
fs.chmodSync(outfile, 0o755);
