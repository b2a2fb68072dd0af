// OCI: real crun and runc containers whose config.json runs `devapollo hook oci` at
// createRuntime and poststop, with the state documents the runtime itself writes on the
// hooks' stdin. The same tests run for each runtime.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestTool, TestDaemon } from '../helpers/daemon.js';
import { gatedTest } from '../helpers/env.js';
import {
  BusyboxSyslog,
  listed,
  OciHost,
  type OciRuntime,
  ociRuntimeUnavailable,
  sharedTempDir,
  syslogUnavailable,
} from '../helpers/runtimes.js';

/** How each runtime reports a hook that failed with exit code CODE. */
const hookFailure: Record<OciRuntime, (code: number) => RegExp> = {
  crun: (code) => new RegExp(`error executing hook .* \\(exit code: ${code}\\)`),
  runc: (code) => new RegExp(`error running hook #0: error running hook: exit status ${code}`),
};

for (const runtime of ['crun', 'runc'] as const)
  describe(`OCI (${runtime})`, () => {
    const unavailable = ociRuntimeUnavailable(runtime);
    const test = gatedTest(unavailable);
    let daemon: TestDaemon;
    let oci: OciHost;
    let noDaemonDir: string;

    before(async () => {
      if (unavailable) return;
      daemon = await TestDaemon.start();
      oci = new OciHost(runtime);
      // A daemon directory with its guest directory but no daemon: what hooks meet when it is down.
      noDaemonDir = sharedTempDir('devapollo-down-');
      fs.mkdirSync(path.join(noDaemonDir, 'devapollo'), { mode: 0o755 });
    });

    after(async () => {
      await oci?.destroy();
      await daemon?.destroy();
      if (noDaemonDir) fs.rmSync(noDaemonDir, { recursive: true, force: true });
    });

    const entry = (name: string) => listed(daemon, name);
    const runs = async (id: string, annotations: Record<string, string>) => {
      const r = await oci.run(id, { dir: daemon.dir, annotations });
      assert.equal(r.code, 0, `${runtime} run ${id}: ${r.stderr}`);
    };

    test('createRuntime registers the container with config from its annotations; its processes read it', async () => {
      await runs('web', { 'apollo.user.foo': 'from an annotation', 'apollo.user.unicode': 'ünï ✓', 'org.example.other': 'x' });
      const state = await oci.state('web');
      assert.equal(state?.status, 'running');
      const listed = await entry('web');
      assert.equal(listed?.state, 'Running');
      assert.equal(listed?.pid, state?.pid);
      assert.equal(listed?.origin, 'register');
      const { 'volatile.devapollo.claim': claim, ...keys } = listed?.config ?? {};
      assert.deepEqual(keys, { 'user.foo': 'from an annotation', 'user.unicode': 'ünï ✓' });
      assert.match(claim ?? '', /^[0-9a-f]{64}$/, 'a claim, for another OCI container to bind to it');
      assert.equal((await oci.curl('web', '/1.0/config/user.foo')).out, 'from an annotation');
      const guest = await oci.exec('web', ['/usr/bin/node', `/opt/guest/${path.basename(guestTool())}`, 'get', 'user.unicode']);
      assert.equal(guest.out, 'ünï ✓', guest.stderr);
      assert.equal((await oci.curl('web', '/1.0/meta-data')).out, '#cloud-config\ninstance-id: web\nlocal-hostname: web\n');
    });

    test(`a second ${runtime} container reads its own keys; devapollo.name names it`, async () => {
      await runs('db', { 'apollo.user.foo': 'db', 'devapollo.name': 'database' });
      assert.equal((await oci.curl('db', '/1.0/config/user.foo')).out, 'db');
      assert.match((await oci.curl('db', '/1.0/meta-data')).out, /^instance-id: database$/m);
      assert.equal((await oci.curl('web', '/1.0/config/user.foo')).out, 'from an annotation');
      assert.equal(await entry('db'), undefined);
    });

    test('poststop (on delete) unregisters and keeps the config; a new run of the same id and bundle re-registers with it', async () => {
      assert.equal((await daemon.cli(['config', 'set', 'web', 'user.extra=kept'])).code, 0);
      const deleted = await oci.delete('web');
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(await oci.state('web'), undefined);
      const listed = await entry('web');
      assert.equal(listed?.state, 'Stopped');
      assert.equal(listed?.pid, 0);
      assert.equal(listed?.config['user.extra'], 'kept');
      await runs('web', { 'apollo.user.foo': 'from an annotation' });
      assert.equal((await oci.curl('web', '/1.0/config/user.extra')).out, 'kept');
      assert.equal((await entry('web'))?.pid, (await oci.state('web'))?.pid);
    });

    test('the poststop of an old run leaves a newer run of the same devapollo.name alone', async () => {
      await runs('old', { 'devapollo.name': 'shared', 'apollo.user.foo': 'shared' });
      assert.equal((await oci.curl('old', '/1.0/config/user.foo')).out, 'shared');
      // The old run stops but is not deleted yet: the runtime runs its poststop hook only on delete.
      assert.equal((await oci.kill('old')).code, 0);
      await eventually(async () => (await entry('shared'))?.state === 'Stopped', 'the daemon sees the old init gone');
      // Another OCI container takes the name only with its claim.
      const refused = await oci.run('intruder', { dir: daemon.dir, annotations: { 'devapollo.name': 'shared' } });
      assert.notEqual(refused.code, 0);
      assert.match(
        oci.hookStderr('intruder', refused),
        /^Error: cannot register OCI container shared: container shared already exists and ran as another OCI container \(not this id and bundle\): to bind this container to it, run it with the annotation devapollo\.claim=\$\(devapollo config get shared volatile\.devapollo\.claim\)/,
      );
      await oci.delete('intruder');
      const claim = (await daemon.cli(['config', 'get', 'shared', 'volatile.devapollo.claim'])).out;
      await runs('new', { 'devapollo.name': 'shared', 'devapollo.claim': claim });
      const running = await entry('shared');
      assert.equal(running?.pid, (await oci.state('new'))?.pid);
      const deleted = await oci.delete('old');
      assert.equal(deleted.code, 0, deleted.stderr);
      // The newer run is still served, and still registered with its own pid.
      assert.equal((await oci.curl('new', '/1.0/config/user.foo')).out, 'shared');
      assert.deepEqual([(await entry('shared'))?.state, (await entry('shared'))?.pid], ['Running', running?.pid]);
      // crun keeps what a hook that succeeded printed; runc throws it away.
      if (runtime === 'crun')
        assert.match(
          oci.hookStderr('old'),
          /^Warning: OCI container shared runs again with init pid \d+, not the run this OCI stop hook is for: left registered\n$/,
        );
      // Its own poststop does let it go.
      assert.equal((await oci.delete('new')).code, 0);
      if (runtime === 'crun') assert.equal(oci.hookStderr('new'), '');
      assert.equal((await entry('shared'))?.state, 'Stopped');
    });

    test(`devapollo create, keys set before the first start, then ${runtime} run: createRuntime binds to it`, async () => {
      assert.equal((await daemon.cli(['create', 'pre', '-c', 'user.foo=created'])).code, 0);
      assert.equal((await daemon.cli(['config', 'set', 'pre', 'cloud-init.user-data=#cloud-config'])).code, 0);
      await runs('pre', { 'apollo.user.bar': 'annotation' });
      const pre = await entry('pre');
      assert.deepEqual([pre?.state, pre?.pid, pre?.origin], ['Running', (await oci.state('pre'))?.pid, 'register']);
      assert.equal((await oci.curl('pre', '/1.0/config/user.foo')).out, 'created');
      assert.equal((await oci.curl('pre', '/1.0/config/cloud-init.user-data')).out, '#cloud-config');
      // Annotations set keys only on a container the hook makes; the hook says what it left out.
      assert.equal(pre?.config['user.bar'], undefined);
      if (runtime === 'crun')
        assert.match(
          oci.hookStderr('pre'),
          /^Warning: OCI container pre: annotations set keys only on a container the hook makes, and pre exists: ignored apollo\.user\.bar /,
        );
      assert.equal((await oci.delete('pre')).code, 0);
      assert.equal((await entry('pre'))?.state, 'Stopped');
    });

    test('a container in the host pid namespace is refused, and the runtime does not start it', async () => {
      const r = await oci.run('hostpid', { dir: daemon.dir, pidNamespace: false });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, hookFailure[runtime](2));
      assert.match(
        oci.hookStderr('hostpid', r),
        /^Error: cannot register OCI container hostpid: pid \d+ is not the init \(pid 1\) of its own pid namespace/,
      );
      assert.equal(await oci.state('hostpid'), undefined);
      assert.equal(await entry('hostpid'), undefined);
    });

    test('an id that is no devapollo name is refused with the rule', async () => {
      const r = await oci.run('9-starts-with-a-digit', { dir: daemon.dir });
      assert.notEqual(r.code, 0);
      assert.match(
        oci.hookStderr('9-starts-with-a-digit', r),
        /^Error: the OCI container id "9-starts-with-a-digit" is not a valid devapollo container name \(a letter, then/,
      );
      assert.equal(await oci.state('9-starts-with-a-digit'), undefined);
    });

    test('with no daemon the createRuntime hook fails and the runtime does not run the container; syslog says why', async () => {
      const syslog = syslogUnavailable ? undefined : await new BusyboxSyslog().start();
      try {
        const r = await oci.run('orphan', { dir: noDaemonDir, ...(syslog && { hookEnv: { APOLLO_SYSLOG_SOCKET: syslog.socket } }) });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, hookFailure[runtime](69));
        assert.match(
          oci.hookStderr('orphan', r),
          /^Error: cannot register OCI container orphan: no devapollo daemon answers on .*unix\.socket.*; refusing to start the container/,
        );
        assert.equal(await oci.state('orphan'), undefined);
        if (syslog !== undefined) {
          assert.match(
            syslog.lines('createRuntime hook')[0] ?? '',
            /daemon\.err devapollo\[\d+\]: OCI createRuntime hook for container "orphan": Error: cannot register OCI container orphan: no devapollo daemon/,
          );
        }
      } finally {
        await syslog?.stop();
      }
    });
  });
