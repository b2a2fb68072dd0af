#!/bin/sh
# npm run test:unit: the *.unit.test.ts files, which need no root, no namespaces and no
# daemon, in seconds. Run as root (as CI does), they run as nobody, so that a test that
# quietly needs root fails here instead of passing because CI happens to be root.
set -eu
cd "$(dirname "$0")/.."
npm run --silent build
npx tsc -p tsconfig.test.json
files=$(find dist-test -name '*.unit.test.js' | sort)
if [ "$(id -u)" != 0 ]; then
  exec node --test --test-reporter=spec $files
fi
as_nobody='setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all'
if $as_nobody node -e 'require("node:fs").accessSync(process.argv[1], require("node:fs").constants.R_OK)' "$PWD/dist-test" 2>/dev/null; then
  echo "test:unit: as root, running the unit tests as nobody"
  exec $as_nobody env HOME=/nonexistent node --test --test-reporter=spec $files
fi
echo "test:unit: nobody cannot read $PWD, so the unit tests run as root" >&2
exec node --test --test-reporter=spec $files
