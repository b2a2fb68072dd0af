/**
 * One line to the host's syslog (or the journal, which listens on the same socket) over
 * /dev/log, written as `logger` writes to a local socket: the datagram
 * `<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE`, facility daemon. Node has no Unix datagram
 * sockets, so socket() and sendto() come from libc. Best effort and never in the way: no
 * /dev/log (a host without a syslog daemon), a full queue (MSG_DONTWAIT: a stuck syslog
 * daemon cannot hang a runtime's hook) or any other failure loses the line, nothing else.
 */
import { close, O_CLOEXEC, sendto, socket } from './libc.js';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const LOG_DAEMON = 3 << 3;
const severities = { err: 3, warning: 4 } as const;
/** sun_path holds 108 bytes, the terminating NUL included. */
const maxPathBytes = 107;
/** Well under what syslog daemons take by default (rsyslog: 8 KiB). */
const maxMessageBytes = 2048;

export const defaultSyslogSocket = '/dev/log';

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 3164's timestamp, local time: "Dec  2 20:35:33". */
function timestamp(at: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${months[at.getMonth()]} ${String(at.getDate()).padStart(2, ' ')} ${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
}

/** The datagram for `message`: one line (control characters escaped), at most 2 KiB. */
export function syslogDatagram(
  severity: keyof typeof severities,
  tag: string,
  message: string,
  at = new Date(),
  pid = process.pid,
): Buffer {
  const line = message.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  const bytes = Buffer.from(`<${LOG_DAEMON | severities[severity]}>${timestamp(at)} ${tag}[${pid}]: ${line}`, 'utf8');
  if (bytes.length <= maxMessageBytes) return bytes;
  // Cut before a character, never inside one (continuation bytes are 10xxxxxx).
  let end = maxMessageBytes;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Sends one line; true when the socket took it. */
export function sendSyslog(severity: keyof typeof severities, tag: string, message: string, socketPath = defaultSyslogSocket): boolean {
  const path = Buffer.from(socketPath, 'utf8');
  if (path.length > maxPathBytes) return false;
  const address = Buffer.alloc(2 + path.length + 1);
  address.writeUInt16LE(AF_UNIX, 0);
  path.copy(address, 2);
  // SOCK_CLOEXEC has O_CLOEXEC's value.
  const fd = socket(AF_UNIX, SOCK_DGRAM | O_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    const datagram = syslogDatagram(severity, tag, message);
    return sendto(fd, datagram, datagram.length, MSG_DONTWAIT | MSG_NOSIGNAL, address, address.length) === datagram.length;
  } finally {
    close(fd);
  }
}
