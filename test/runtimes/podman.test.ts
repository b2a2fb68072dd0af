// podman: Debian's podman with the README's hook files, written by the README's own text
// (into a temporary hooks directory instead of /etc/containers/oci/hooks.d, which other
// work on the machine shares), an image made offline with `podman import`, and a store of
// the test's own. The README's podman example runs as written; then what a user relies on:
// registration, reads that never meet a 403, stop and rm letting go, start registering
// again, and a daemon that is down keeping the container from starting.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { guestTool, TestDaemon } from '../helpers/daemon.js';
import { gatedTest } from '../helpers/env.js';
import { devapolloCommand, readmeBlock, sh, substitute, transcript } from '../helpers/readme.js';
import { devapolloArgv, keysBesidesClaim, listed, PodmanHost, podmanUnavailable, sharedTempDir } from '../helpers/runtimes.js';

describe('podman', () => {
  const test = gatedTest(podmanUnavailable);
  let daemon: TestDaemon;
  let podman: PodmanHost;
  let scratch: string;
  let hooksDir: string;
  /** The README's containers.conf.d file, naming the temporary hooks directory. */
  let confFile: string;
  const image = 'localhost/host-usr';

  /** The README's text with this test's paths and this host's podman. */
  const asHere = (text: string) =>
    substitute(text, [
      ['/tmp/', `${scratch}/`],
      ['/etc/containers/oci/hooks.d', hooksDir],
      ['/etc/containers/containers.conf.d', path.dirname(confFile)],
      ['/var/lib/apollo', daemon.dir],
      ['/usr/local/bin/devapollo', devapolloCommand(scratch, devapolloArgv(daemon.dir))],
      // The README's `devapollo` commands, at a line's start or in $(...).
      [/(^|\$\()devapollo /gm, `$1${path.join(scratch, 'devapollo')} `],
      [/\bpodman run /g, `podman run ${PodmanHost.hostRunArgs.join(' ')} `],
      [/\bpodman (?=[a-z])/g, `${podman.command} `],
    ]);
  const readmeEnv = () => ({ ...process.env, CONTAINERS_CONF: confFile });

  before(async () => {
    if (podmanUnavailable) return;
    daemon = await TestDaemon.start();
    podman = new PodmanHost();
    scratch = sharedTempDir('devapollo-podman-readme-');
    hooksDir = path.join(scratch, 'hooks.d');
    confFile = path.join(scratch, 'containers.conf.d', 'devapollo.conf');
    // The README's hook set-up, as written but for the directories.
    const setup = await sh(asHere(readmeBlock('mkdir -p /etc/containers/oci/hooks.d')), { cwd: scratch });
    assert.equal(setup.code, 0, setup.stderr);
    assert.deepEqual(fs.readdirSync(hooksDir).sort(), ['devapollo-createRuntime.json', 'devapollo-poststop.json']);
  });

  after(async () => {
    await podman?.destroy();
    await daemon?.destroy();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const entry = (name: string) => listed(daemon, name);
  const podmanPid = async (name: string) => Number((await podman.podman(['inspect', '--format', '{{.State.Pid}}', name])).out.trim());
  /** podman run -d with the README's mounts, this host's flags, and the hooks found through `how`. */
  const runs = async (name: string, how: 'conf' | 'hooks-dir', args: readonly string[] = []) => {
    const hooks = how === 'hooks-dir' ? ['--hooks-dir', hooksDir] : [];
    const r = await podman.podman(
      [
        'run',
        ...PodmanHost.hostRunArgs,
        ...hooks,
        '-d',
        '--name',
        name,
        ...args,
        '-v',
        '/usr:/usr:ro',
        '-v',
        `${daemon.dir}/devapollo:/dev/apollo:ro`,
        '-v',
        `${path.dirname(guestTool())}:/opt/guest:ro`,
        image,
        'sleep',
        'infinity',
      ],
      how === 'conf' ? readmeEnv() : process.env,
    );
    return r;
  };
  const started = async (name: string, how: 'conf' | 'hooks-dir', args: readonly string[] = []) => {
    const r = await runs(name, how, args);
    assert.equal(r.code, 0, `podman run ${name}: ${r.stderr}`);
  };

  test("the README's podman example works as written: created first, the hook binds web by its claim, whose curl reads its key", async () => {
    const block = asHere(readmeBlock('mkdir -p /tmp/host-usr/usr'));
    const { steps, rest } = transcript(block, ['web']);
    const env = readmeEnv();
    for (const step of steps) {
      const setup = await sh(step.setup, { cwd: scratch, env });
      assert.equal(setup.code, 0, `${step.setup}\n${setup.stderr}`);
      const listedWeb = await entry('web');
      assert.equal(listedWeb?.state, 'Running');
      assert.equal(listedWeb?.pid, await podmanPid('web'));
      const shown = await sh(step.command, { cwd: scratch, env });
      assert.equal(shown.out, step.output, shown.stderr);
    }
    const end = await sh(rest, { cwd: scratch, env });
    assert.equal(end.code, 0, end.stderr);
    const stopped = await entry('web');
    assert.equal(stopped?.state, 'Stopped');
    assert.equal(stopped?.pid, 0);
    assert.deepEqual(keysBesidesClaim(stopped?.config), { 'user.role': 'web' });
  });

  test('with --hooks-dir instead: every read from inside answers, none with 403', async () => {
    await started('reader', 'hooks-dir', ['--annotation', 'devapollo.name=reader', '--annotation', 'apollo.user.greeting=hi there']);
    for (const target of ['/', '/1.0', '/1.0/config', '/1.0/config/user.greeting', '/1.0/meta-data', '/1.0/devices']) {
      const r = await podman.curl('reader', target);
      assert.equal(r.out.split('\n').at(-1), '200', `${target}: ${r.out} ${r.stderr}`);
    }
    assert.equal((await podman.curl('reader', '/1.0/config/user.greeting')).out, 'hi there\n200');
    const guest = await podman.podman([
      'exec',
      'reader',
      '/usr/bin/node',
      `/opt/guest/${path.basename(guestTool())}`,
      'get',
      'user.greeting',
    ]);
    assert.equal(guest.out, 'hi there', guest.stderr);
    assert.equal((await entry('reader'))?.pid, await podmanPid('reader'));
  });

  test('podman stop lets go, podman start registers again with the kept keys, podman rm --force lets go', async () => {
    assert.equal((await daemon.cli(['config', 'set', 'reader', 'user.extra=kept'])).code, 0);
    const stop = await podman.podman(['stop', '--time', '0', 'reader']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await entry('reader'))?.state, 'Stopped');
    // The hooks are looked up at every start: `podman start` needs them as `run` did.
    const start = await podman.podman(['start', '--hooks-dir', hooksDir, 'reader']);
    assert.equal(start.code, 0, start.stderr);
    assert.equal((await entry('reader'))?.pid, await podmanPid('reader'));
    assert.equal((await podman.curl('reader', '/1.0/config/user.extra')).out, 'kept\n200');
    const rm = await podman.podman(['rm', '--force', '--time', '0', 'reader']);
    assert.equal(rm.code, 0, rm.stderr);
    const gone = await entry('reader');
    assert.equal(gone?.state, 'Stopped');
    assert.equal(gone?.config['user.extra'], 'kept');
  });

  test('podman gives a hook no name of its container: without devapollo.name it is not hooked and gets 403', async () => {
    // A hook for every container that keeps what podman hands hooks: the state on stdin and
    // the bundle's config.json.
    const probeDir = path.join(scratch, 'probe.d');
    const seen = path.join(scratch, 'seen');
    fs.mkdirSync(probeDir);
    fs.mkdirSync(seen);
    const probe = path.join(scratch, 'probe.sh');
    fs.writeFileSync(
      probe,
      `#!/bin/sh\ncat > ${seen}/state.json\nbundle=$(sed -n 's/.*"bundle":"\\([^"]*\\)".*/\\1/p' ${seen}/state.json)\ncp "$bundle/config.json" ${seen}/config.json\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(
      path.join(probeDir, 'probe.json'),
      JSON.stringify({ version: '1.0.0', stages: ['createRuntime'], when: { always: true }, hook: { path: probe } }),
    );
    const r = await podman.podman([
      'run',
      ...PodmanHost.hostRunArgs,
      '--hooks-dir',
      hooksDir,
      '--hooks-dir',
      probeDir,
      '-d',
      '--name',
      'nameless',
      '-v',
      '/usr:/usr:ro',
      '-v',
      `${daemon.dir}/devapollo:/dev/apollo:ro`,
      image,
      'sleep',
      'infinity',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const state = fs.readFileSync(path.join(seen, 'state.json'), 'utf8');
    const config = fs.readFileSync(path.join(seen, 'config.json'), 'utf8');
    assert.match(state, /"id":"[0-9a-f]{64}"/);
    assert.doesNotMatch(state, /nameless/);
    assert.doesNotMatch(config, /nameless/);
    assert.equal(await entry('nameless'), undefined);
    const denied = await podman.curl('nameless', '/1.0');
    assert.equal(denied.out.split('\n').at(-1), '403');
  });

  test('with the daemon down the createRuntime hook fails and podman does not run the container', async () => {
    await daemon.signal('SIGTERM');
    try {
      const r = await runs('unserved', 'conf', ['--annotation', 'devapollo.name=unserved']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /exit status 69|exit code: 69/);
      const state = await podman.podman(['inspect', '--format', '{{.State.Status}}', 'unserved']);
      assert.notEqual(state.out.trim(), 'running');
    } finally {
      await daemon.spawn();
    }
    assert.equal(await entry('unserved'), undefined);
  });
});
