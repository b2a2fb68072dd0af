// Stock cloud-init (Debian's package, unchanged) booting under systemd in a privileged LXC
// container with a Debian root filesystem of its own (built offline with debootstrap, cached
// between runs, booted through an overlay), as the README tells users: the container is
// `create`d and given its user-data before its first boot, its LXC config has the README's
// lines plus the one for /dev/lxd, and the start hook binds to it. Then a change of
// user-data and a reboot: a new instance-id, and the new user-data applied as a new instance.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe } from 'node:test';
import { TestDaemon } from '../helpers/daemon.js';
import { gatedTest } from '../helpers/env.js';
import { devapolloCommand, readmeBlock, substitute } from '../helpers/readme.js';
import { debianRootfs, debianRootfsUnavailable, devapolloArgv, LxcHost, listed, sharedTempDir } from '../helpers/runtimes.js';

/** User-data that leaves a trace of each module it uses, named after `instance`. */
const userData = (instance: string) => `#cloud-config
hostname: vm-${instance}
write_files:
  - path: /etc/devapollo-${instance}
    content: "héllo from the ${instance} user-data ✓\\n"
runcmd:
  - [sh, -c, "echo ${instance} > /var/tmp/runcmd-${instance}"]
`;

describe('cloud-init boots under systemd in LXC (Debian root filesystem, stock cloud-init)', () => {
  const test = gatedTest(debianRootfsUnavailable);
  const name = 'vm';
  let daemon: TestDaemon;
  let lxc: LxcHost;
  let scratch: string;

  before(async () => {
    if (debianRootfsUnavailable) return;
    const rootfs = await debianRootfs();
    daemon = await TestDaemon.start();
    lxc = new LxcHost();
    scratch = sharedTempDir('devapollo-cloud-init-boot-');
    // The README's LXC lines, and its line for /dev/lxd, where stock cloud-init looks.
    const lines = substitute(
      `${readmeBlock('lxc.mount.entry = /var/lib/apollo/devapollo dev/apollo')}${readmeBlock('lxc.mount.entry = /var/lib/apollo/devapollo dev/lxd')}`,
      [
        ['/var/lib/apollo', daemon.dir],
        ['/usr/local/bin/devapollo', devapolloCommand(scratch, devapolloArgv(daemon.dir))],
      ],
    );
    lxc.createFromRootfs(name, rootfs, lines);
  });

  after(async () => {
    await lxc?.destroy();
    await daemon?.destroy();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const inside = (command: readonly string[], timeoutMs?: number) => lxc.attach(name, command, { timeoutMs: timeoutMs ?? 60_000 });
  const read = async (file: string) => (await inside(['cat', file])).out;
  const instanceIdOnHost = async () => (await daemon.cli(['config', 'get', name, 'volatile.cloud-init.instance-id'])).out;

  /**
   * Waits until the container booted anew (an init other than `previous`) and its PID 1 is
   * systemd (LXC reports RUNNING while /sbin/init has yet to become systemd), then until
   * cloud-init is done; returns cloud-init's final status.
   */
  const booted = async (previous: number): Promise<string> => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const { state, pid } = await lxc.info(name);
      if (state === 'RUNNING' && pid !== 0 && pid !== previous && (await inside(['cat', '/proc/1/comm'])).out.trim() === 'systemd') break;
      if (Date.now() > deadline) throw new Error(`${name} did not boot systemd (state ${state}, pid ${pid})`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const status = await inside(['cloud-init', 'status', '--wait', '--long'], 300_000);
    const log = status.code === 0 ? '' : (await inside(['tail', '-n', '40', '/var/log/cloud-init.log'])).out;
    assert.equal(status.code, 0, `cloud-init status: ${status.out}${status.stderr}\n${log}`);
    return status.out;
  };

  test('first boot: the start hook binds to the created container, cloud-init applies the user-data set before it', async () => {
    const created = await daemon.cli(['create', name, '-c', 'security.devapollo.lxd-compat=true']);
    assert.equal(created.code, 0, created.stderr);
    const set = await daemon.cli(['config', 'set', name, 'cloud-init.user-data', '-'], { input: userData('first') });
    assert.equal(set.code, 0, set.stderr);
    assert.equal((await listed(daemon, name))?.state, 'Stopped');

    const start = await lxc.start(name);
    assert.equal(start.code, 0, `lxc-start: ${start.stderr}\n${fs.readFileSync(lxc.logFile(name), 'utf8')}`);
    const status = await booted(0);
    assert.match(status, /^status: done$/m);
    assert.match(status, /DataSourceLXD/);

    const entry = await listed(daemon, name);
    assert.equal(entry?.state, 'Running');
    assert.equal(entry?.pid, (await lxc.info(name)).pid);
    assert.equal(await read('/etc/devapollo-first'), 'héllo from the first user-data ✓\n');
    assert.equal(await read('/var/tmp/runcmd-first'), 'first\n');
    assert.equal((await inside(['hostname'])).out, 'vm-first\n');
    const instanceId = (await inside(['cloud-init', 'query', 'instance-id'])).out.trim();
    assert.equal(instanceId, (await instanceIdOnHost()) || name);
    // The host's cloud-init stays disabled; the container's root filesystem never had the file.
    assert.ok(fs.existsSync('/etc/cloud/cloud-init.disabled'), 'the host keeps /etc/cloud/cloud-init.disabled');
    assert.notEqual((await inside(['test', '-e', '/etc/cloud/cloud-init.disabled'])).code, 0);
  });

  test('changed user-data and a reboot: a new instance-id, the new user-data applied as a new instance', async () => {
    const before = (await inside(['cloud-init', 'query', 'instance-id'])).out.trim();
    const set = await daemon.cli(['config', 'set', name, 'cloud-init.user-data', '-'], { input: userData('changed') });
    assert.equal(set.code, 0, set.stderr);
    const changed = await instanceIdOnHost();
    assert.match(changed, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.notEqual(changed, before);

    const { pid } = await lxc.info(name);
    await inside(['systemctl', 'reboot']);
    const status = await booted(pid);
    assert.match(status, /^status: done$/m);

    assert.equal((await inside(['cloud-init', 'query', 'instance-id'])).out.trim(), changed);
    assert.equal((await read('/run/cloud-init/.instance-id')).trim(), changed);
    assert.equal(await read('/etc/devapollo-changed'), 'héllo from the changed user-data ✓\n');
    assert.equal(await read('/var/tmp/runcmd-changed'), 'changed\n');
    assert.equal((await inside(['hostname'])).out, 'vm-changed\n');
    // The first instance's files stay (a new instance does not wipe the disk).
    assert.equal(await read('/var/tmp/runcmd-first'), 'first\n');
    const instances = (await inside(['ls', '/var/lib/cloud/instances'])).out.split('\n').filter(Boolean).sort();
    assert.deepEqual(instances, [before, changed].sort());
    // Rebooted, it is served as the same container, by its new init.
    assert.equal((await listed(daemon, name))?.pid, (await lxc.info(name)).pid);
  });

  test('lxc-stop lets go of it and keeps its keys', async () => {
    const stopped = await lxc.stop(name);
    assert.equal(stopped.code, 0, stopped.stderr);
    const entry = await listed(daemon, name);
    assert.equal(entry?.state, 'Stopped');
    assert.equal(entry?.config['cloud-init.user-data'], userData('changed'));
  });
});
