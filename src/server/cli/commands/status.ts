/** `devapollo status`: the daemon's health at a glance. */
import { render, writeOut } from '../../../shared/output.js';
import type { StatusWire } from '../../../shared/wire.js';
import { adminClient, hostCommand } from './shared.js';

/** `status`. */
export const status = hostCommand(
  (y) =>
    y
      .option('format', { alias: 'f', choices: ['table', 'json'] as const, default: 'table' as const })
      .example('$0 status --format json', ''),
  async (argv) => {
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
