// `devapollo hook` against a real daemon, by hand, as a runtime would call it: every
// registration path refuses a pid that is not a container's init, and one namespace never
// gets two names. (The LXC and crun tests run the same hooks from the real runtimes.)
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe } from 'node:test';
import { eventually, run, startTimeOf, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../helpers/env.js';
import { listContainers } from '../helpers/runtimes.js';

/** The config key that holds a container's claim (containers/oci-binding.ts). */
const claimKey = 'volatile.devapollo.claim';

describe('devapollo hook (by hand)', () => {
  const test = gatedTest(containersUnavailable);
  let daemon: TestDaemon;
  let unshare: ChildProcess | undefined;
  let init = 0;

  before(async () => {
    if (containersUnavailable) return;
    daemon = await TestDaemon.start();
    // A pid namespace made outside devapollo, as a runtime makes one; its init is our target.
    unshare = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'sleep', '1000'], { stdio: 'ignore' });
    await eventually(async () => {
      init = Number((await run('pgrep', ['-P', String(unshare?.pid)])).out.trim()) || 0;
      return init > 0;
    }, 'the foreign namespace has its init');
  });

  after(async () => {
    unshare?.kill('SIGKILL');
    await daemon?.destroy();
  });

  const lxcEnv = (pid: number) => ({ ...process.env, LXC_PID: String(pid) });
  const oci = (stage: string, state: Record<string, unknown>) =>
    daemon.cli(['hook', 'oci', stage], { input: JSON.stringify({ ociVersion: '1.0.2', status: 'created', bundle: '/b', ...state }) });
  const list = () => listContainers(daemon);

  test('a host pid is refused by both hooks', async () => {
    const lxc = await daemon.cli(['hook', 'lxc', 'hostly', 'lxc', 'start-host'], { env: lxcEnv(process.pid) });
    assert.equal(lxc.code, 2);
    assert.equal(
      lxc.stderr,
      `Error: cannot register LXC container hostly: pid ${process.pid} is not the init (pid 1) of its own pid namespace\n`,
    );
    const o = await oci('createRuntime', { id: 'hostly', pid: process.pid });
    assert.equal(o.code, 2);
    assert.equal(
      o.stderr,
      `Error: cannot register OCI container hostly: pid ${process.pid} is not the init (pid 1) of its own pid namespace\n`,
    );
    assert.equal((await list()).length, 0);
  });

  test('a dead pid is refused by both hooks', async () => {
    const dead = spawn('true');
    await new Promise((resolve) => dead.once('exit', resolve));
    assert.equal(startTimeOf(dead.pid ?? 0), undefined);
    const lxc = await daemon.cli(['hook', 'lxc', 'ghost', 'lxc', 'start-host'], { env: lxcEnv(dead.pid ?? 0) });
    assert.equal(lxc.code, 2);
    assert.equal(lxc.stderr, `Error: cannot register LXC container ghost: no process with pid ${dead.pid}\n`);
    const o = await oci('createRuntime', { id: 'ghost', pid: dead.pid });
    assert.equal(o.code, 2);
    assert.equal(o.stderr, `Error: cannot register OCI container ghost: no process with pid ${dead.pid}\n`);
    assert.equal((await list()).length, 0);
  });

  test('one namespace never gets a second name, whichever hook asks', async () => {
    const first = await oci('createRuntime', { id: 'first', pid: init, annotations: { 'apollo.user.foo': 'bar' } });
    assert.equal(first.code, 0, first.stderr);
    const second = await daemon.cli(['hook', 'lxc', 'second', 'lxc', 'start-host'], { env: lxcEnv(init) });
    assert.equal(second.code, 1);
    assert.equal(second.stderr, 'Error: cannot register LXC container second: that pid namespace already belongs to container first\n');
    const third = await daemon.cli(['register', 'third', '--pid', String(init)]);
    assert.equal(third.code, 1);
    assert.deepEqual(
      (await list()).map((c) => c.name),
      ['first'],
    );
  });

  test('a stop hook lets go of a registered container, keeps its config, and is quiet about unknown ones', async () => {
    const stop = await oci('poststop', { id: 'first', pid: 0, status: 'stopped' });
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stderr, '');
    const [first] = await list();
    assert.deepEqual([first?.name, first?.state, first?.pid], ['first', 'Stopped', 0]);
    assert.equal((await daemon.cli(['config', 'get', 'first', 'user.foo'])).out, 'bar');
    const unknown = await oci('poststop', { id: 'never-registered', pid: 0, status: 'stopped' });
    assert.equal(unknown.code, 0, unknown.stderr);
    assert.equal(unknown.stderr, '');
  });

  test('a stop hook refuses to let go of a container devapollo launched', async () => {
    await daemon.launch('own');
    const r = await daemon.cli(['hook', 'lxc', 'own', 'lxc', 'post-stop']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error: cannot let go of LXC container own: container own was launched by devapollo: use stop\n');
    assert.equal((await list()).find((c) => c.name === 'own')?.state, 'Running');
  });

  test('a start hook binds to a created container, keeping its keys; devapollo start then refuses it', async () => {
    assert.equal((await daemon.cli(['create', 'made', '-c', 'user.foo=created', '-c', 'user.bar=created'])).code, 0);
    // A stop hook of a container that never ran (its start hook failed) has nothing to do.
    const early = await oci('poststop', { id: 'made', pid: 0, status: 'stopped' });
    assert.equal(early.code, 0, early.stderr);
    assert.equal(early.stderr, '');
    const { pid } = (await list()).find((c) => c.name === 'first') ?? {};
    assert.equal(pid, 0, 'the foreign init is free again');
    // Not managed by podman (its annotations are the admin's config.json), never started: the name binds.
    const bound = await oci('createRuntime', { id: 'made', pid: init, annotations: { 'apollo.user.bar': 'annotation' } });
    assert.equal(bound.code, 0, bound.stderr);
    // Annotations set keys only on a container the hook makes.
    assert.equal(
      bound.stderr,
      'Warning: OCI container made: annotations set keys only on a container the hook makes, and made exists: ignored apollo.user.bar ' +
        '(set them with devapollo config set made KEY=VALUE)\n',
    );
    const made = (await list()).find((c) => c.name === 'made');
    assert.deepEqual([made?.state, made?.pid, made?.origin], ['Running', init, 'register']);
    const { [claimKey]: claim, ...keys } = made?.config ?? {};
    assert.match(claim ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(keys, { 'user.bar': 'created', 'user.foo': 'created' });
    assert.equal((await oci('poststop', { id: 'made', pid: 0, status: 'stopped' })).code, 0);
    // Bound once to another runtime, always: devapollo start refuses it after its stop.
    const start = await daemon.cli(['start', 'made']);
    assert.equal(start.code, 1);
    assert.equal(start.stderr, 'Error: container made was started by another runtime: start it there\n');
  });

  test('a container created with a command is for devapollo start, not for a hook', async () => {
    assert.equal((await daemon.cli(['create', 'withcmd', '--', 'sleep', '1'])).code, 0);
    const r = await oci('createRuntime', { id: 'withcmd', pid: init });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'Error: cannot register OCI container withcmd: container withcmd was created with a command for devapollo to run: start it with devapollo start\n',
    );
    assert.equal((await list()).find((c) => c.name === 'withcmd')?.origin, 'create');
  });

  test("an LXC hook's config at every start: the same user-data again keeps the instance-id, new user-data makes a new one", async () => {
    const instanceId = async () => (await list()).find((c) => c.name === 'cfg')?.config['volatile.cloud-init.instance-id'];
    const start = async (userData: string) => {
      const r = await daemon.cli(['hook', 'lxc', '-c', `cloud-init.user-data=${userData}`, 'cfg', 'lxc', 'start-host'], {
        env: lxcEnv(init),
      });
      assert.equal(r.code, 0, r.stderr);
    };
    const stop = async () => assert.equal((await daemon.cli(['hook', 'lxc', 'cfg', 'lxc', 'post-stop'], { env: lxcEnv(init) })).code, 0);
    await start('#cloud-config\n');
    await stop();
    await start('#cloud-config\n');
    assert.equal(await instanceId(), undefined);
    await stop();
    await start('#cloud-config\nruncmd: [new]\n');
    assert.match((await instanceId()) ?? '', /^[0-9a-f-]{36}$/);
    await stop();
  });

  test('a late stop hook for another run leaves the running one registered, with a warning (LXC by pid, OCI by id and bundle)', async () => {
    const lxc = await daemon.cli(['hook', 'lxc', 'late', 'lxc', 'start-host'], { env: lxcEnv(init) });
    assert.equal(lxc.code, 0, lxc.stderr);
    const stale = await daemon.cli(['hook', 'lxc', 'late', 'lxc', 'post-stop'], { env: lxcEnv(init + 100000) });
    assert.equal(stale.code, 0, stale.stderr);
    assert.equal(stale.stderr, `Warning: LXC container late runs again with init pid ${init}, not ${init + 100000}: left registered\n`);
    assert.equal((await list()).find((c) => c.name === 'late')?.state, 'Running');
    const own = await daemon.cli(['hook', 'lxc', 'late', 'lxc', 'post-stop'], { env: lxcEnv(init) });
    assert.deepEqual([own.code, own.stderr], [0, '']);
    assert.equal((await list()).find((c) => c.name === 'late')?.state, 'Stopped');

    const named = { 'devapollo.name': 'twin' };
    assert.equal((await oci('createRuntime', { id: 'twin-2', bundle: '/b2', pid: init, annotations: named })).code, 0);
    for (const state of [
      { id: 'twin-1', bundle: '/b2' },
      { id: 'twin-2', bundle: '/b1' },
    ]) {
      const old = await oci('poststop', { ...state, pid: 0, status: 'stopped', annotations: named });
      assert.equal(old.code, 0, old.stderr);
      assert.match(
        old.stderr,
        /^Warning: OCI container twin runs again with init pid \d+, not the run this OCI stop hook is for: left registered\n$/,
      );
      assert.equal((await list()).find((c) => c.name === 'twin')?.state, 'Running', JSON.stringify(state));
    }
    const mine = await oci('poststop', { id: 'twin-2', bundle: '/b2', pid: 0, status: 'stopped', annotations: named });
    assert.deepEqual([mine.code, mine.stderr], [0, '']);
    assert.equal((await list()).find((c) => c.name === 'twin')?.state, 'Stopped');
  });

  test("podman's OCI hook binds to an existing container only with its claim or as the same container, and its annotations never change one", async () => {
    // What podman writes in every container's annotations, and what an image may add.
    const podman = (id: string, annotations: Record<string, string> = {}) =>
      oci('createRuntime', {
        id,
        bundle: `/b/${id}`,
        pid: init,
        annotations: { 'io.container.manager': 'libpod', 'devapollo.name': 'pod', ...annotations },
      });
    const stop = (id: string) =>
      oci('poststop', { id, bundle: `/b/${id}`, pid: 0, status: 'stopped', annotations: { 'devapollo.name': 'pod' } });
    assert.equal((await daemon.cli(['create', 'pod', '-c', 'user.foo=admin'])).code, 0);
    const before = (await list()).find((c) => c.name === 'pod')?.config;
    const claim = (await daemon.cli(['config', 'get', 'pod', 'volatile.devapollo.claim'])).out;
    assert.match(claim, /^[0-9a-f]{64}$/);

    const image = { 'apollo.user.foo': 'image', 'apollo.security.devapollo.users': 'true' };
    for (const annotations of [image, { ...image, 'devapollo.claim': 'guessed' }]) {
      const refused = await podman('a1', annotations);
      assert.equal(refused.code, 4, refused.stderr);
      assert.match(
        refused.stderr,
        /^Error: cannot register OCI container pod: .*run it with --annotation devapollo\.claim=\$\(devapollo config get pod volatile\.devapollo\.claim\); or give it another devapollo\.name\n$/,
      );
      assert.deepEqual((await list()).find((c) => c.name === 'pod')?.config, before);
    }
    const claimed = await podman('a2', { ...image, 'devapollo.claim': claim });
    assert.equal(claimed.code, 0, claimed.stderr);
    assert.match(
      claimed.stderr,
      /^Warning: OCI container pod: annotations set keys only on a container the hook makes, and pod exists: ignored apollo\.user\.foo, apollo\.security\.devapollo\.users /,
    );
    assert.deepEqual((await list()).find((c) => c.name === 'pod')?.config, before);
    assert.equal((await stop('a2')).code, 0);
    // The same podman container restarting binds again without its claim; another does not.
    assert.equal((await podman('a3')).code, 4);
    const restarted = await podman('a2');
    assert.deepEqual([restarted.code, restarted.stderr], [0, '']);
    assert.equal((await stop('a2')).code, 0);

    // A container the hook makes takes the annotations' keys, but never volatile.* ones.
    const fresh = await oci('createRuntime', {
      id: 'f1',
      pid: init,
      annotations: {
        'io.container.manager': 'libpod',
        'devapollo.name': 'fresh',
        'apollo.user.foo': 'image',
        'apollo.volatile.cloud-init.instance-id': 'chosen',
        'apollo.acme.flag': 'on',
      },
    });
    assert.equal(fresh.code, 0, fresh.stderr);
    // An annotation meant for another tool is left out, not a failed start.
    assert.equal(
      fresh.stderr,
      "Warning: OCI container fresh: annotations never set volatile.* keys (the daemon's own): ignored apollo.volatile.cloud-init.instance-id; " +
        'annotations name keys devapollo does not know: ignored apollo.acme.flag\n',
    );
    const { [claimKey]: freshClaim, ...freshKeys } = (await list()).find((c) => c.name === 'fresh')?.config ?? {};
    assert.match(freshClaim ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(freshKeys, { 'user.foo': 'image' });
    assert.equal((await oci('poststop', { id: 'f1', pid: 0, status: 'stopped', annotations: { 'devapollo.name': 'fresh' } })).code, 0);
  });

  test('usage errors: an unknown stage or hook type, a state that is not JSON', async () => {
    const stage = await daemon.cli(['hook', 'oci', 'poststart'], { input: '{}' });
    assert.equal(stage.code, 2);
    assert.equal(stage.stderr, 'Error: devapollo hook oci handles the stages createRuntime, prestart, poststop, not "poststart"\n');
    const type = await daemon.cli(['hook', 'lxc', 'c1', 'lxc', 'mount']);
    assert.equal(type.code, 2);
    const notJson = await daemon.cli(['hook', 'oci', 'createRuntime'], { input: 'hello' });
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /^Error: the OCI state on stdin is not JSON/);
  });
});
