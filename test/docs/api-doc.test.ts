// docs/api.md is the project's API reference: it has a row for every route the daemon's
// two route tables answer, so that a route added without its documentation fails here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { adminRoutes } from '../../dist/server/admin/routes.js';
import { guestRoutes } from '../../dist/server/guest/routes.js';
import { repoRoot } from '../helpers/daemon.js';

const doc = fs.readFileSync(path.join(repoRoot, 'docs/api.md'), 'utf8');

/** The section of docs/api.md under `## heading`, up to the next `## `. */
function section(heading: string): string {
  const start = doc.indexOf(`\n## ${heading}\n`);
  assert.notEqual(start, -1, `docs/api.md has a section "${heading}"`);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** `/1.0/containers/:name/config/:key` as the doc spells it: `/1.0/containers/NAME/config/KEY`. */
const documented = (route: { path: string }) => route.path.replace(/:([a-z]+)/g, (_match, name: string) => name.toUpperCase());

for (const [heading, routes] of [
  ['Guest API', guestRoutes],
  ['Admin API', adminRoutes],
] as const) {
  test(`docs/api.md has a row for every route of the ${heading}`, () => {
    const text = section(heading);
    for (const route of routes) {
      const row = `| \`${route.method}\` | \`${documented(route)}\` |`;
      assert.ok(text.includes(row), `${heading}: ${route.method} ${route.path} (a row beginning ${row})`);
    }
  });
}

test('docs/api.md keeps the headings other parts of the work fill in', () => {
  for (const heading of ['Identity tokens', 'Guest-written keys']) assert.ok(section(heading).length > 0);
});
