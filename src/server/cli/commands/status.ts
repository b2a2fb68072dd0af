/** `devapollo status [NAME]`: the daemon's health at a glance, or one container's, as `lxc info`. */
import os from 'node:os';
import { render, writeOut } from '../../../shared/output.js';
import type { ContainerWire, StatusWire } from '../../../shared/wire.js';
import { adminClient, containerType, hostCommand } from './shared.js';

/** `status [name]`. */
export const status = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', describe: 'a container: its state, pid, command and how its last run ended' })
      .option('format', { alias: 'f', choices: ['table', 'json'] as const, default: 'table' as const })
      .example('$0 status --format json', '')
      .example('$0 status web', "the container's state and its command's exit status"),
  async (argv) => {
    if (argv.name !== undefined) {
      const container = await adminClient(argv).container(argv.name);
      await writeOut(await render(argv.format, container, () => ({ head: ['', ''], rows: containerRows(container) })));
      return;
    }
    const status = await adminClient(argv).status();
    const rows: [string, string][] = [
      ['version', status.version],
      ['pid', String(status.pid)],
      ['uptime', `${status.uptime_seconds} s`],
      ['directory', status.dir],
      ['guest socket', status.guest_socket],
      ['admin socket', status.admin_socket],
      ['containers', `${status.containers.total} (${status.containers.running} running)`],
      ['guest connections', `${status.connections.guest} (${status.connections.paused} paused)`],
      ['event streams', `${status.connections.event_listeners} guest, ${status.connections.admin_event_listeners} admin`],
      ['change-waits', `${status.connections.change_waits} (at most ${status.limits.change_waits_per_container} per container)`],
      ['guest writes', guestWrites(status.limits)],
      ['peer pidfd', status.identity.peer_pidfd ? 'yes' : 'no'],
      ['pidfd namespace', status.identity.pidfd_namespace ? 'yes' : 'no (/proc, checked by pidfd)'],
      ['namespace ids', status.identity.namespace_ids ? 'yes' : 'no (inode numbers, pinned)'],
      ['socket re-created', socketRepairs(status.socket_repairs)],
    ];
    const stranded = status.socket_repairs.stranded_containers;
    if (stranded.length > 0)
      rows.push([
        'cut off (restart them)',
        `${stranded.length}: ${stranded.slice(0, 10).join(', ')}${stranded.length > 10 ? ', ...' : ''}`,
      ]);
    await writeOut(await render(argv.format, status, () => ({ head: ['', ''], rows })));
  },
);

/** The guest's write rate and quotas, on one line. */
function guestWrites(limits: StatusWire['limits']): string {
  const rate =
    limits.guest_writes_per_second === 0 ? 'no rate limit' : `${limits.guest_writes_per_second}/s, bursts of ${limits.guest_write_burst}`;
  return `${rate}; at most ${limits.guest_keys_per_container} keys, ${limits.guest_key_bytes_per_container} bytes in all, ${limits.guest_value_bytes} per value, per container`;
}

/** "never", or how often and the last time, with what was found. */
function socketRepairs(repairs: StatusWire['socket_repairs']): string {
  if (repairs.count === 0) return 'never';
  return `${repairs.count} time${repairs.count === 1 ? '' : 's'}, last at ${repairs.last_at ?? '?'} (${repairs.last ?? '?'})`;
}

/** One container, field by field; its config is shown by `config show`. */
function containerRows(c: ContainerWire): [string, string][] {
  const running = c.state === 'Running';
  const rows: [string, string][] = [
    ['name', c.name],
    ['state', c.state],
    ['guest state', running ? c.guest_state : ''],
    ['pid', running ? String(c.pid) : ''],
    ['type', containerType(c)],
    ['command', c.command === null ? '(none: the init idles until stop)' : c.command.map(shellWord).join(' ')],
    ['last exit', lastExit(c)],
    ['created', c.created_at],
    ['config keys', String(Object.keys(c.config).length)],
  ];
  if (c.idmap !== null) rows.push(['id range', `uid ${c.idmap.uid_base}, gid ${c.idmap.gid_base}, ${c.idmap.count} ids`]);
  return rows;
}

/** "7", "137 (128+9: SIGKILL)" as a shell reports a signal, or why there is none. */
function lastExit(c: ContainerWire): string {
  const code = c.exit_code;
  if (code !== null) {
    const signal = code > 128 ? Object.entries(os.constants.signals).find(([, n]) => n === code - 128) : undefined;
    return signal === undefined ? String(code) : `${code} (128+${signal[1]}: ${signal[0]})`;
  }
  if (c.state === 'Running') return 'running';
  if (c.origin === 'register') return 'unknown (its runtime ran it)';
  return 'none (never ran)';
}

/** A word as a shell would need it written: quoted when it holds anything but plain characters. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
