/**
 * `serve --admin-group`: the one group besides root that may use the admin API. Its name
 * is resolved once at start; a peer's membership is read from the kernel's view of it.
 */
import fs from 'node:fs';
import { ApolloError } from '../../shared/errors.js';

/** The gid of a group given by name (from /etc/group) or by number. */
export function groupId(name: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(name)) return Number(name);
  const line = fs
    .readFileSync(groupFile, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const gid = line?.split(':')[2];
  if (gid === undefined || !/^\d+$/.test(gid)) throw new ApolloError('bad-request', `no group named ${name}`);
  return Number(gid);
}

/** Whether the peer is in the admin group: its primary gid, or its supplementary groups in /proc. */
export function inAdminGroup(pid: number, gid: number, adminGid: number | undefined): boolean {
  if (adminGid === undefined) return false;
  if (gid === adminGid) return true;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const groups = /^Groups:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
    return groups.includes(adminGid);
  } catch {
    return false;
  }
}
