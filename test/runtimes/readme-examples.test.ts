// The README's LXC and OCI examples, run as written: the blocks are read from README.md and
// run with sh, changing only what would clash on a shared machine (an lxcpath and a crun or
// runc state root of the test's own, /tmp paths in a scratch directory, the daemon's
// directory, the path of `devapollo`), and on a hybrid-cgroup host crun as the README says
// to run it there. What each example prints is what the README shows. (The podman example
// runs in podman.test.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { TestDaemon } from '../helpers/daemon.js';
import { gatedTest } from '../helpers/env.js';
import { devapolloCommand, readmeBlock, sh, substitute, transcript } from '../helpers/readme.js';
import {
  devapolloArgv,
  hybridCgroupHost,
  keysBesidesClaim,
  LxcHost,
  listed,
  lxcUnavailable,
  type OciRuntime,
  ociRuntimeUnavailable,
  sharedTempDir,
} from '../helpers/runtimes.js';

/** Runs a README transcript: each step's commands, then the command whose output it shows. */
async function runTranscript(
  block: string,
  outputs: readonly string[],
  options: { cwd: string; prelude?: string; afterEach?: (output: string) => Promise<void> },
): Promise<void> {
  const { steps, rest } = transcript(block, outputs);
  for (const step of steps) {
    const setup = await sh(step.setup, options);
    assert.equal(setup.code, 0, `${step.setup}\n${setup.stderr}`);
    const shown = await sh(step.command, options);
    assert.equal(shown.out, step.output, `${step.command}\n${shown.stderr}`);
    await options.afterEach?.(step.output);
  }
  const end = await sh(rest, options);
  assert.equal(end.code, 0, `${rest}\n${end.stderr}`);
}

describe('README: LXC examples', () => {
  const test = gatedTest(lxcUnavailable);
  let daemon: TestDaemon;
  let lxc: LxcHost;
  let scratch: string;

  before(async () => {
    if (lxcUnavailable) return;
    daemon = await TestDaemon.start();
    lxc = new LxcHost();
    scratch = sharedTempDir('devapollo-readme-lxc-');
  });

  after(async () => {
    await lxc?.destroy();
    await daemon?.destroy();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const asHere = (text: string) =>
    substitute(text, [
      ['/tmp/', `${scratch}/`],
      ['/var/lib/lxc/', `${lxc.lxcpath}/`],
      [/\b(lxc-(?:create|start|attach|stop)) /g, `$1 -P ${lxc.lxcpath} `],
      ['/var/lib/apollo', daemon.dir],
      ['/usr/local/bin/devapollo', devapolloCommand(scratch, devapolloArgv(daemon.dir))],
    ]);

  const example = async (name: string, firstLine: string) => {
    lxc.adopt(name);
    await runTranscript(asHere(readmeBlock(firstLine)), [name], {
      cwd: scratch,
      afterEach: async () => {
        const running = await listed(daemon, name);
        assert.equal(running?.state, 'Running');
        assert.equal(running?.pid, (await lxc.info(name)).pid);
      },
    });
    const stopped = await listed(daemon, name);
    assert.equal(stopped?.state, 'Stopped');
    assert.deepEqual(keysBesidesClaim(stopped?.config), { 'user.role': name });
  };

  test('the privileged busybox example works as written', async () => {
    await example('web', "printf 'lxc.net.0.type = empty\\n' > /tmp/no-net.conf");
  });

  test('the unprivileged example works as written: its root, host uid 1000000, reads its key', async () => {
    await example('app', "printf 'lxc.net.0.type = empty\\nlxc.idmap");
    const config = fs.readFileSync(path.join(lxc.lxcpath, 'app', 'config'), 'utf8');
    assert.match(config, /^lxc\.idmap = u 0 1000000 65536$/m);
  });
});

for (const runtime of ['crun', 'runc'] as const satisfies readonly OciRuntime[]) {
  describe(`README: the OCI example with ${runtime}`, () => {
    const unavailable = ociRuntimeUnavailable(runtime);
    const test = gatedTest(unavailable);
    let daemon: TestDaemon;
    let scratch: string;
    const state = () => path.join(scratch, 'state');

    before(async () => {
      if (unavailable) return;
      daemon = await TestDaemon.start();
      scratch = sharedTempDir(`devapollo-readme-${runtime}-`);
    });

    after(async () => {
      if (scratch) {
        await sh(`${runtime} --root ${state()} delete --force web || true`, { cwd: scratch, prelude: prelude() });
        fs.rmSync(scratch, { recursive: true, force: true });
      }
      await daemon?.destroy();
    });

    /**
     * crun as the README says to run it on a hybrid-cgroup host (its function, read from
     * the README), with this test's state root; runc as it is, with that root.
     */
    const prelude = () => {
      if (runtime === 'crun' && hybridCgroupHost) {
        return substitute(readmeBlock('crun() { unshare'), [['exec crun "$@"', `exec crun --root ${state()} "$@"`]]);
      }
      return `${runtime}() { command ${runtime} --root ${state()} "$@"; }`;
    };

    test(`the bundle example works as written${runtime === 'runc' ? ', with runc for crun, as the README says' : ''}`, async () => {
      let block = substitute(readmeBlock('mkdir -p web/rootfs/usr'), [
        ['/var/lib/apollo', daemon.dir],
        ['/usr/local/bin/devapollo', devapolloCommand(scratch, devapolloArgv(daemon.dir))],
      ]);
      if (runtime === 'runc') block = block.replace(/\bcrun\b/g, 'runc');
      await runTranscript(block, ['web'], {
        cwd: scratch,
        prelude: prelude(),
        afterEach: async () => assert.equal((await listed(daemon, 'web'))?.state, 'Running'),
      });
      const gone = await listed(daemon, 'web');
      assert.equal(gone?.state, 'Stopped');
      assert.deepEqual(keysBesidesClaim(gone?.config), { 'user.role': 'web' });
    });
  });
}
