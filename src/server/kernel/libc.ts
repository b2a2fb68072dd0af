/**
 * The few libc calls Node has no API for, bound through koffi (an FFI whose npm package
 * ships prebuilt binaries, so users install devapollo without a compiler). Every call
 * here is synchronous and costs about a microsecond; errors come back as errno.
 */
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
const koffi = createRequire(import.meta.url)('koffi') as Koffi;

const lib = koffi.load('libc.so.6');

/** Binds a function, or returns undefined where this libc lacks it (older glibc). */
function optional<T>(bind: () => T): T | undefined {
  try {
    return bind();
  } catch {
    return undefined;
  }
}

const syscallLong = lib.func('long syscall(long number, long a, long b, long c, long d)') as (
  n: number,
  a: number,
  b: number,
  c: number,
  d: number,
) => number;

// Syscall numbers where glibc has no wrapper; the same on x86_64 and arm64.
const SYS_pidfd_open = 434;
const SYS_pidfd_send_signal = 424;

// Lengths go in a Uint32Array: koffi converts a plain JS array element by element and
// back, which made a getsockopt cost about 1.6 µs instead of 0.9 µs.
export const getsockopt = lib.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)') as (
  fd: number,
  level: number,
  name: number,
  value: Buffer,
  length: Uint32Array,
) => number;

export const getsockname = lib.func('int getsockname(int fd, _Out_ uint8_t *address, _Inout_ uint32_t *length)') as (
  fd: number,
  address: Buffer,
  length: Uint32Array,
) => number;

/** ioctl(fd, request, integer argument); glibc's ioctl reads the third argument from a register. */
export const ioctlValue = lib.func('ioctl', 'int', ['int', 'ulong', 'long']) as (fd: number, request: number, arg: number) => number;

/** ioctl(fd, request, pointer to a buffer the kernel fills). */
export const ioctlBuffer = lib.func('ioctl', 'int', ['int', 'ulong', '_Out_ uint8_t *']) as (
  fd: number,
  request: number,
  out: Buffer,
) => number;

export const close = lib.func('int close(int fd)') as (fd: number) => number;

/** fcntl(fd, command, integer argument): F_GETFD, F_SETFD. */
export const fcntlValue = lib.func('fcntl', 'int', ['int', 'int', 'long']) as (fd: number, command: number, arg: number) => number;

/** struct termios (60 bytes with glibc on Linux) in caller-owned buffers. */
export const tcgetattr = lib.func('int tcgetattr(int fd, _Out_ uint8_t *termios)') as (fd: number, termios: Buffer) => number;
export const tcsetattr = lib.func('int tcsetattr(int fd, int when, uint8_t *termios)') as (
  fd: number,
  when: number,
  termios: Buffer,
) => number;
export const cfmakeraw = lib.func('void cfmakeraw(_Inout_ uint8_t *termios)') as (termios: Buffer) => void;

/**
 * fstat and fstatfs into caller-owned buffers (struct stat is 144 bytes on x86_64 and
 * arm64, with st_ino at offset 8; struct statfs starts with f_type). Undefined where
 * this libc lacks the plain symbols (glibc before 2.33).
 */
export const fstat = optional(() => lib.func('int fstat(int fd, _Out_ uint8_t *stat)') as (fd: number, stat: Buffer) => number);
export const fstatfs = optional(() => lib.func('int fstatfs(int fd, _Out_ uint8_t *statfs)') as (fd: number, statfs: Buffer) => number);

export const poll = lib.func('int poll(_Inout_ uint8_t *fds, ulong count, int timeout)') as (
  fds: Buffer,
  count: number,
  timeout: number,
) => number;

const pidfdOpenLibc = optional(() => lib.func('int pidfd_open(int pid, uint flags)') as (pid: number, flags: number) => number);
export function pidfdOpen(pid: number): number {
  return pidfdOpenLibc ? pidfdOpenLibc(pid, 0) : syscallLong(SYS_pidfd_open, pid, 0, 0, 0);
}

export function pidfdSendSignal(pidfd: number, signal: number): number {
  return syscallLong(SYS_pidfd_send_signal, pidfd, signal, 0, 0);
}

export const flock = lib.func('int flock(int fd, int operation)') as (fd: number, op: number) => number;

export const socket = lib.func('int socket(int domain, int type, int protocol)') as (
  domain: number,
  type: number,
  protocol: number,
) => number;
export const sendto = lib.func(
  'long sendto(int fd, uint8_t *buffer, ulong length, int flags, uint8_t *address, uint32_t addressLength)',
) as (fd: number, buffer: Buffer, length: number, flags: number, address: Buffer, addressLength: number) => number;

export const epollCreate1 = lib.func('int epoll_create1(int flags)') as (flags: number) => number;
export const epollCtl = lib.func('int epoll_ctl(int epfd, int op, int fd, uint8_t *event)') as (
  epfd: number,
  op: number,
  fd: number,
  event: Buffer | null,
) => number;
export const epollWait = lib.func('int epoll_wait(int epfd, _Out_ uint8_t *events, int max, int timeout)') as ((
  epfd: number,
  events: Buffer,
  max: number,
  timeout: number,
) => number) & {
  async: (epfd: number, events: Buffer, max: number, timeout: number, done: (error: unknown, count: number) => void) => void;
};
export const eventfd = lib.func('int eventfd(uint initval, int flags)') as (initial: number, flags: number) => number;
export const write = lib.func('long write(int fd, uint8_t *buffer, ulong count)') as (fd: number, buffer: Buffer, count: number) => number;

/** errno of the last call made through koffi on this thread. */
export function errno(): number {
  return koffi.errno();
}

/** Linux errno values used by callers. */
export const Errno = {
  EPERM: 1,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  EWOULDBLOCK: 11,
  ENOMEM: 12,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSYS: 38,
  ENOPROTOOPT: 92,
} as const;

/**
 * The kernel could not hand out a descriptor (this process's or the system's limit, or
 * memory): whatever needed it cannot be told, which is not the same as a "no".
 */
export class OutOfDescriptors extends Error {
  constructor(
    readonly errno: number,
    what: string,
  ) {
    const why =
      errno === Errno.EMFILE ? 'too many open files' : errno === Errno.ENFILE ? 'too many open files in the system' : 'out of memory';
    super(`${what}: ${why} (errno ${errno})`);
    this.name = 'OutOfDescriptors';
  }
}

/** Throws OutOfDescriptors when `err` says a descriptor could not be had. */
export function throwIfOutOfDescriptors(err: number, what: string): void {
  if (err === Errno.EMFILE || err === Errno.ENFILE || err === Errno.ENOMEM) throw new OutOfDescriptors(err, what);
}

/** struct epoll_event is packed (12 bytes) on x86_64 and naturally aligned (16) elsewhere. */
export const epollEventLayout = process.arch === 'x64' ? { size: 12, dataOffset: 4 } : { size: 16, dataOffset: 8 };

export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
