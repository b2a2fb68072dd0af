// cloud-init: Debian's cloud-init package, its LXD datasource unchanged, reading a real
// devapollo container's socket from inside the container. Only the datasource's reading
// code runs: a full cloud-init boot in a container that shares the host's files would
// rewrite the host's hostname and network.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { TestDaemon } from '../helpers/daemon.js';
import { gatedTest } from '../helpers/env.js';
import { cloudInitUnavailable, sharedTempDir, systemPython } from '../helpers/runtimes.js';

/**
 * Runs inside the container. With a socket path argument it points the datasource's
 * module-level LXD_SOCKET_PATH at it (the one thing changed, and only in memory); without
 * one the datasource looks where stock cloud-init looks, /dev/lxd/sock. It then calls what
 * cloud-init's boot calls: is_platform_viable(), read_metadata() (every GET the boot
 * makes) and DataSourceLXD._get_data(), and prints what they found as JSON.
 */
const readerScript = `import json, sys, tempfile
from cloudinit import helpers
from cloudinit.sources import DataSourceLXD as lxd

if len(sys.argv) > 1:
    lxd.LXD_SOCKET_PATH = sys.argv[1]
out = {"socket": lxd.LXD_SOCKET_PATH, "viable": lxd.is_platform_viable()}
if out["viable"]:
    out["crawled"] = lxd.read_metadata()
    # The container shares the host's /tmp: the scratch directory goes when this is done.
    with tempfile.TemporaryDirectory() as scratch:
        ds = lxd.DataSourceLXD(sys_cfg={}, distro=None, paths=helpers.Paths({"cloud_dir": scratch, "run_dir": scratch}))
        out["found"] = ds._get_data()
        out["metadata"] = ds.metadata
        out["userdata_raw"] = ds.userdata_raw
        out["vendordata_raw"] = ds.vendordata_raw
        out["network_config"] = ds.network_config
print(json.dumps(out))
`;

interface Read {
  socket: string;
  viable: boolean;
  crawled?: {
    'meta-data': string;
    'user-data'?: string;
    'vendor-data'?: string;
    'network-config'?: string;
    config: Record<string, string>;
    devices: unknown;
  };
  found?: boolean;
  metadata?: Record<string, unknown>;
  userdata_raw?: string;
  vendordata_raw?: string;
  network_config?: unknown;
}

const userData = `#cloud-config
# UTF-8 all the way: ünïcödé, 日本語, emoji 🚀, and a BOM-less é at the end
write_files:
  - path: /tmp/greeting
    content: "héllo wörld ✓"
runcmd: [echo, "tab\there"]
é`;
const vendorData = '#cloud-config\npackages: [cowsay]\n# vendor: Société Générale\n';
const networkConfig = 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n    # ñ\n';
const userMetaData = 'public-keys: ["ssh-ed25519 AAAA… ñandú@example"]\nregion: zürich\n';

describe('cloud-init (Debian, DataSourceLXD unchanged)', () => {
  const test = gatedTest(cloudInitUnavailable);
  let daemon: TestDaemon;
  let scriptDir: string;

  before(async () => {
    if (cloudInitUnavailable) return;
    scriptDir = sharedTempDir('devapollo-cloud-init-');
    fs.writeFileSync(path.join(scriptDir, 'read.py'), readerScript, { mode: 0o644 });
    daemon = await TestDaemon.start();
    await daemon.launch('cloudy');
    await daemon.launch('compat', { config: { 'security.devapollo.lxd-compat': 'true' } });
    for (const name of ['cloudy', 'compat']) {
      for (const [key, value] of Object.entries({
        'cloud-init.user-data': userData,
        'cloud-init.vendor-data': vendorData,
        'cloud-init.network-config': networkConfig,
        'user.meta-data': userMetaData,
      })) {
        const set = await daemon.cli(['config', 'set', name, key, '-'], { input: value });
        assert.equal(set.code, 0, set.stderr);
      }
    }
  });

  after(async () => {
    await daemon?.destroy();
    if (scriptDir) fs.rmSync(scriptDir, { recursive: true, force: true });
  });

  const read = async (name: string, socket?: string): Promise<Read> => {
    const args = [systemPython, '-B', path.join(scriptDir, 'read.py'), ...(socket === undefined ? [] : [socket])];
    const r = await daemon.exec(name, args);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.out) as Read;
  };

  /** The instance-id the daemon keeps: the data was set after launch, so it is no longer NAME. */
  const instanceIdOf = async (name: string) => {
    const r = await daemon.cli(['config', 'get', name, 'volatile.cloud-init.instance-id']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.out, /^[0-9a-f-]{36}$/);
    return r.out;
  };

  const assertReadsExactly = async (result: Read, name: string) => {
    const instanceId = await instanceIdOf(name);
    assert.equal(result.viable, true);
    const crawled = result.crawled;
    assert.ok(crawled);
    assert.equal(crawled['meta-data'], `#cloud-config\ninstance-id: ${instanceId}\nlocal-hostname: ${name}\n${userMetaData}`);
    assert.equal(crawled['user-data'], userData);
    assert.equal(crawled['vendor-data'], vendorData);
    assert.equal(crawled['network-config'], networkConfig);
    assert.deepEqual(crawled.config, {
      'cloud-init.network-config': networkConfig,
      'cloud-init.user-data': userData,
      'cloud-init.vendor-data': vendorData,
      'user.meta-data': userMetaData,
    });
    assert.deepEqual(crawled.devices, {});
    // What the datasource hands the rest of cloud-init.
    assert.equal(result.found, true);
    assert.equal(result.userdata_raw, userData);
    assert.equal(result.vendordata_raw, vendorData);
    assert.deepEqual(result.network_config, { version: 2, ethernets: { eth0: { dhcp4: true } } });
    assert.deepEqual(result.metadata, {
      'instance-id': instanceId,
      'local-hostname': name,
      'public-keys': ['ssh-ed25519 AAAA… ñandú@example'],
      region: 'zürich',
    });
  };

  test('the datasource pointed at /dev/apollo/sock reads everything exactly as set', async () => {
    await assertReadsExactly(await read('cloudy', '/dev/apollo/sock'), 'cloudy');
  });

  test('stock cloud-init finds nothing at /dev/lxd/sock without lxd-compat', async () => {
    const result = await read('cloudy');
    assert.equal(result.socket, '/dev/lxd/sock');
    assert.equal(result.viable, false);
  });

  test('with security.devapollo.lxd-compat=true the unmodified datasource reads /dev/lxd/sock', async () => {
    const result = await read('compat');
    assert.equal(result.socket, '/dev/lxd/sock');
    await assertReadsExactly(result, 'compat');
  });

  test('a change on the host is what the datasource reads next, as a new instance', async () => {
    const before = await instanceIdOf('compat');
    assert.equal((await read('compat')).metadata?.['instance-id'], before);
    const changed = `${userData}\n# changed: ✓`;
    assert.equal((await daemon.cli(['config', 'set', 'compat', 'cloud-init.user-data', '-'], { input: changed })).code, 0);
    const result = await read('compat');
    assert.equal(result.userdata_raw, changed);
    // cloud-init runs its per-instance modules again only for a new instance-id.
    const after = await instanceIdOf('compat');
    assert.notEqual(after, before);
    assert.equal(result.metadata?.['instance-id'], after);
  });

  test('values given at launch keep the instance-id NAME; a later user-data makes a new one', async () => {
    await daemon.launch('fresh', { config: { 'security.devapollo.lxd-compat': 'true', 'cloud-init.user-data': userData } });
    const first = await read('fresh');
    assert.equal(first.userdata_raw, userData);
    assert.equal(first.metadata?.['instance-id'], 'fresh');
    assert.equal((await daemon.cli(['config', 'set', 'fresh', 'cloud-init.user-data', '-'], { input: `${userData}\n# v2` })).code, 0);
    assert.equal((await read('fresh')).metadata?.['instance-id'], await instanceIdOf('fresh'));
  });
});
