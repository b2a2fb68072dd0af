// Runtime hooks without a runtime: reading what LXC and OCI runtimes hand a hook, and what
// a hook does when no daemon answers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { AdminClient } from '../../../dist/server/admin/client.js';
import { applyHook } from '../../../dist/server/admin/hooks/apply-hook.js';
import { lxcHookRequest } from '../../../dist/server/admin/hooks/lxc-hook.js';
import { configFromAnnotations, ociContainerName, ociHookRequest, parseOciState } from '../../../dist/server/admin/hooks/oci-hook.js';
import { newRecord } from '../../../dist/server/containers/manager.js';
import { annotationConfig, claimKey, claimMatches, newClaim, ociBindRefusal } from '../../../dist/server/containers/oci-binding.js';
import type { ContainerRecord } from '../../../dist/server/state/container-store.js';
import { ApolloError } from '../../../dist/shared/errors.js';

/** A state document as crun writes it on a createRuntime hook's stdin. */
const crunState = (fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    ociVersion: '1.0',
    id: 'web',
    pid: 4242,
    root: 'rootfs',
    bundle: '/srv/web',
    status: 'created',
    annotations: { 'apollo.user.foo': 'bar', 'org.opencontainers.image.title': 'x' },
    ...fields,
  });

const rejects = (fn: () => unknown, code: string, message: RegExp) =>
  assert.throws(fn, (error: unknown) => error instanceof ApolloError && error.code === code && message.test(error.message));

describe('OCI state', () => {
  test('reads the fields a hook needs and ignores the rest', () => {
    assert.deepEqual(parseOciState(crunState()), {
      id: 'web',
      pid: 4242,
      status: 'created',
      bundle: '/srv/web',
      annotations: { 'apollo.user.foo': 'bar', 'org.opencontainers.image.title': 'x' },
    });
  });

  test('a poststop state (pid 0) and one without annotations are fine', () => {
    const state = parseOciState(JSON.stringify({ ociVersion: '1.0.2', id: 'web', status: 'stopped', bundle: '/b' }));
    assert.equal(state.pid, 0);
    assert.deepEqual(state.annotations, {});
  });

  test('refuses what is not a state document, saying what is wrong', () => {
    rejects(() => parseOciState(''), 'bad-request', /^the OCI state on stdin is not JSON \(run this as an OCI hook/);
    rejects(() => parseOciState('[]'), 'bad-request', /is not a JSON object$/);
    rejects(() => parseOciState(crunState({ id: '' })), 'bad-request', /has no "id"$/);
    rejects(() => parseOciState(crunState({ pid: -1 })), 'bad-request', /has an invalid "pid"$/);
    rejects(() => parseOciState(crunState({ pid: '12' })), 'bad-request', /has an invalid "pid"$/);
    rejects(() => parseOciState(crunState({ annotations: { a: 1 } })), 'bad-request', /has a non-string annotation a$/);
  });
});

describe('OCI names and annotations', () => {
  test('the name is the id, or the devapollo.name annotation', () => {
    assert.equal(ociContainerName(parseOciState(crunState())), 'web');
    assert.equal(ociContainerName(parseOciState(crunState({ id: 'f'.repeat(64), annotations: { 'devapollo.name': 'db' } }))), 'db');
  });

  test('an id that is no devapollo name is a clear error', () => {
    const podmanId = `9${'a'.repeat(63)}`;
    rejects(
      () => ociContainerName(parseOciState(crunState({ id: podmanId }))),
      'bad-request',
      new RegExp(`^the OCI container id "${podmanId}" is not a valid devapollo container name \\(a letter, .*\\): .*devapollo.name=NAME$`),
    );
    rejects(
      () => ociContainerName(parseOciState(crunState({ annotations: { 'devapollo.name': 'no_underscores' } }))),
      'bad-request',
      /^the annotation devapollo.name="no_underscores" is not a valid devapollo container name/,
    );
  });

  test('apollo.-prefixed annotations set keys; others are left alone', () => {
    assert.deepEqual(
      configFromAnnotations({
        'apollo.user.foo': 'bar',
        'apollo.cloud-init.user-data': '#cloud-config\n',
        'apollo.security.devapollo.users': 'true',
        'io.kubernetes.pod': 'x',
        apollo: 'not a prefix',
      }),
      { 'user.foo': 'bar', 'cloud-init.user-data': '#cloud-config\n', 'security.devapollo.users': 'true' },
    );
    rejects(() => configFromAnnotations({ 'apollo.': 'x' }), 'bad-request', /^the annotation apollo\. names no valid config key/);
    rejects(() => configFromAnnotations({ 'apollo.user foo': 'x' }), 'bad-request', /^the annotation apollo\.user foo names no valid/);
  });

  test('each stage asks the right thing', () => {
    assert.deepEqual(ociHookRequest('createRuntime', crunState()), {
      action: 'register',
      runtime: 'OCI',
      name: 'web',
      pid: 4242,
      config: { 'user.foo': 'bar' },
      runtimeId: '["oci","web","/srv/web"]',
      oci: { claim: undefined, podman: false },
    });
    // podman marks every container it makes; the claim is an annotation of its own.
    const podman = ociHookRequest(
      'createRuntime',
      crunState({ annotations: { 'io.container.manager': 'libpod', 'devapollo.claim': 'c0ffee' } }),
    );
    assert.deepEqual(podman.action === 'register' && podman.oci, { claim: 'c0ffee', podman: true });
    assert.equal(ociHookRequest('prestart', crunState()).action, 'register');
    assert.deepEqual(ociHookRequest('poststop', crunState({ pid: 0, status: 'stopped' })), {
      action: 'unregister',
      runtime: 'OCI',
      name: 'web',
      pid: undefined,
      runtimeId: '["oci","web","/srv/web"]',
    });
    // Another run of the same devapollo.name (another id, or the same id in another bundle).
    const other = (fields: Record<string, unknown>) => ociHookRequest('poststop', crunState({ pid: 0, status: 'stopped', ...fields }));
    assert.notEqual(
      other({ id: 'web-2', annotations: { 'devapollo.name': 'web' } }).runtimeId,
      ociHookRequest('createRuntime', crunState()).runtimeId,
    );
    assert.notEqual(other({ bundle: '/srv/other' }).runtimeId, ociHookRequest('createRuntime', crunState()).runtimeId);
    rejects(
      () => ociHookRequest('createRuntime', crunState({ pid: 0, status: 'stopped' })),
      'bad-request',
      /^the OCI state of web has no pid \(status "stopped"\): use "devapollo hook oci createRuntime" as a createRuntime hook/,
    );
  });
});

describe("OCI binding rules (an OCI state's annotations may be an image's)", () => {
  const claim = newClaim();
  const runId = '["oci","web","/srv/web"]';
  const record = (fields: Partial<ContainerRecord> = {}): ContainerRecord => ({
    ...newRecord('web', 'create', false, null),
    config: { [claimKey]: claim, 'user.foo': 'kept' },
    ...fields,
  });
  const podman = { claim: undefined, podman: true };
  const crun = { claim: undefined, podman: false };

  test('a claim is 256 random bits; it matches only itself, never when unset or empty', () => {
    assert.match(claim, /^[0-9a-f]{64}$/);
    assert.notEqual(newClaim(), claim);
    assert.equal(claimMatches(record(), claim), true);
    assert.equal(claimMatches(record(), `${claim}0`), false);
    assert.equal(claimMatches(record(), claim.slice(0, -1)), false);
    assert.equal(claimMatches(record(), ''), false);
    assert.equal(claimMatches(record(), undefined), false);
    assert.equal(claimMatches(record({ config: {} }), ''), false);
    assert.equal(claimMatches(record({ config: { [claimKey]: '' } }), ''), false);
  });

  test('a podman container binds to an existing record only by its claim or as the same container restarting', () => {
    assert.match(
      ociBindRefusal(record(), runId, podman) ?? '',
      /^container web already exists, and a podman container's annotations may come from its image, so the name alone binds nothing: to bind this container to it, run it with --annotation devapollo\.claim=\$\(devapollo config get web volatile\.devapollo\.claim\); or give it another devapollo\.name$/,
    );
    assert.equal(ociBindRefusal(record(), runId, { ...podman, claim }), undefined);
    assert.match(
      ociBindRefusal(record(), runId, { ...podman, claim: 'guess' }) ?? '',
      /^the annotation devapollo\.claim is not the claim of container web: /,
    );
    const registered = record({ origin: 'register', last_runtime_id: runId });
    assert.equal(ociBindRefusal(registered, runId, podman), undefined);
    assert.match(ociBindRefusal(registered, '["oci","other","/srv/web"]', podman) ?? '', /^container web already exists, and a podman/);
  });

  test('a container podman does not manage binds by name alone only to a created record that never started', () => {
    assert.equal(ociBindRefusal(record(), runId, crun), undefined);
    const registered = record({ origin: 'register', last_runtime_id: '["oci","old","/srv/old"]' });
    assert.match(
      ociBindRefusal(registered, runId, crun) ?? '',
      /^container web already exists and ran as another OCI container \(not this id and bundle\): to bind this container to it, run it with the annotation devapollo\.claim=/,
    );
    assert.equal(ociBindRefusal(registered, runId, { ...crun, claim }), undefined);
    assert.equal(ociBindRefusal(registered, '["oci","old","/srv/old"]', crun), undefined);
  });

  test('annotations set keys only on a new record, never volatile.* keys; what is left out is said', () => {
    const changes = {
      'user.foo': 'image',
      'cloud-init.user-data': '#cloud-config\n',
      'volatile.cloud-init.instance-id': 'x',
      [claimKey]: 'mine',
    };
    const fresh = annotationConfig(changes, undefined);
    assert.deepEqual({ ...fresh.config }, { 'user.foo': 'image', 'cloud-init.user-data': '#cloud-config\n' });
    assert.deepEqual(fresh.ignored, [
      "annotations never set volatile.* keys (the daemon's own): ignored apollo.volatile.cloud-init.instance-id, apollo.volatile.devapollo.claim",
    ]);
    const existing = annotationConfig(changes, record());
    assert.deepEqual({ ...existing.config }, {});
    assert.equal(existing.ignored.length, 2);
    assert.equal(
      existing.ignored[1],
      'annotations set keys only on a container the hook makes, and web exists: ignored apollo.user.foo, apollo.cloud-init.user-data (set them with devapollo config set web KEY=VALUE)',
    );
    // A container restarting carries the same annotations again: no warning for those.
    const again = annotationConfig({ 'user.foo': 'kept' }, record());
    assert.deepEqual([{ ...again.config }, again.ignored], [{}, []]);
  });
});

describe('LXC hook', () => {
  const startHost = { LXC_NAME: 'c1', LXC_PID: '4242', LXC_HOOK_VERSION: '0' };

  test('hook version 0: name and type as arguments, pid in LXC_PID', () => {
    assert.deepEqual(lxcHookRequest(['c1', 'lxc', 'start-host'], startHost, { 'user.a': '1' }), {
      action: 'register',
      runtime: 'LXC',
      name: 'c1',
      pid: 4242,
      config: { 'user.a': '1' },
    });
  });

  test('hook version 1: everything in the environment', () => {
    const request = lxcHookRequest([], { ...startHost, LXC_HOOK_TYPE: 'start-host', LXC_HOOK_VERSION: '1' }, {});
    assert.equal(request.action, 'register');
  });

  test('stop and post-stop let go, with the pid the init had; namespace arguments are ignored', () => {
    assert.deepEqual(lxcHookRequest(['c1', 'lxc', 'stop', 'mnt:/proc/9/fd/39', 'pid:/proc/9/fd/40'], startHost, {}), {
      action: 'unregister',
      runtime: 'LXC',
      name: 'c1',
      pid: 4242,
    });
    assert.equal(lxcHookRequest(['c1', 'lxc', 'post-stop'], { LXC_NAME: 'c1' }, {}).pid, undefined);
  });

  test('refuses other hooks, bad names, missing or bad pids, and a run by hand', () => {
    rejects(
      () => lxcHookRequest(['c1', 'lxc', 'pre-start'], startHost, {}),
      'usage',
      /handles start-host, stop and post-stop hooks, not "pre-start"$/,
    );
    rejects(() => lxcHookRequest([], {}, {}), 'usage', /^no LXC container name or hook type: run this as an LXC hook/);
    rejects(
      () => lxcHookRequest(['my_box', 'lxc', 'start-host'], { LXC_PID: '1' }, {}),
      'bad-request',
      /^the LXC container name "my_box" is not a valid/,
    );
    rejects(() => lxcHookRequest(['c1', 'lxc', 'start-host'], {}, {}), 'usage', /^LXC_PID is not set/);
    rejects(() => lxcHookRequest(['c1', 'lxc', 'start-host'], { LXC_PID: '12x' }, {}), 'bad-request', /^LXC_PID is not a pid: "12x"$/);
    rejects(() => lxcHookRequest(['c1', 'lxc', 'start-host'], { LXC_PID: '0' }, {}), 'bad-request', /^LXC_PID is not a pid: "0"$/);
  });
});

describe('hooks when no daemon answers', () => {
  // A real AdminClient on a directory where no daemon runs: the same error a stopped daemon gives.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-nodaemon-'));
  const admin = new AdminClient(dir);
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

  test('a start hook fails with exit 69 and says why the container must not start', async () => {
    await assert.rejects(
      applyHook({ action: 'register', runtime: 'LXC', name: 'c1', pid: 4242, config: {} }, admin),
      (error: unknown) =>
        error instanceof ApolloError &&
        error.exitCode === 69 &&
        error.message ===
          `cannot register LXC container c1: no devapollo daemon answers on ${dir}/unix.socket: start it with "devapollo serve --dir ${dir}"; ` +
            'refusing to start the container: its /dev/apollo/sock would answer nothing about it',
    );
  });

  test('a stop hook succeeds with a warning', async () => {
    const warning = await applyHook({ action: 'unregister', runtime: 'OCI', name: 'web', pid: undefined }, admin);
    assert.match(warning ?? '', /^no daemon to tell that OCI container web stopped \(no devapollo daemon answers on .*\); nothing is lost/);
  });
});
