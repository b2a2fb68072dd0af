/**
 * Tells the daemon when a container's init exits, by pidfd, for any number of containers.
 *
 * A pidfd turns readable when its process exits. Node cannot poll an arbitrary descriptor,
 * so all pidfds go into one epoll set and a single epoll_wait runs on a libuv worker
 * thread (koffi's async call), in slices of half a second; the event loop is never
 * blocked. An eventfd in the same set wakes that thread for shutdown. Containers are not
 * our children (they outlive the daemon), so waitpid is not an option, and kill(pid, 0)
 * would be fooled by a recycled pid.
 */
import { close, epollCreate1, epollCtl, epollEventLayout, epollWait, errno, eventfd, O_CLOEXEC, O_NONBLOCK, write } from './libc.js';

const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x1;
const batch = 256;
/**
 * Each wait ends after this and is started again. A worker thread must never block for
 * good: when the process exits (even on a crash) libuv joins its pool, and an endless
 * epoll_wait would keep a dead daemon from ever exiting (and from releasing its lock).
 */
const waitSliceMs = 500;

export class ExitWatcher {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly callbacks = new Map<number, () => void>();
  private readonly events = Buffer.alloc(epollEventLayout.size * batch);
  private waiting = false;
  private closed = false;
  private drained: (() => void) | undefined;

  constructor() {
    this.epfd = epollCreate1(O_CLOEXEC);
    if (this.epfd < 0) throw new Error(`epoll_create1 failed with errno ${errno()}`);
    this.wakeFd = eventfd(0, O_CLOEXEC | O_NONBLOCK);
    if (this.wakeFd < 0) throw new Error(`eventfd failed with errno ${errno()}`);
    this.control(EPOLL_CTL_ADD, this.wakeFd);
  }

  /** Calls `onExit` once, on the event loop, when the process behind `pidfd` exits. */
  watch(pidfd: number, onExit: () => void): void {
    if (this.closed) throw new Error('exit watcher is closed');
    this.callbacks.set(pidfd, onExit);
    this.control(EPOLL_CTL_ADD, pidfd);
    this.arm();
  }

  /** Stops watching; the caller still owns (and closes) the pidfd. */
  unwatch(pidfd: number): void {
    if (this.callbacks.delete(pidfd)) epollCtl(this.epfd, EPOLL_CTL_DEL, pidfd, null);
  }

  get size(): number {
    return this.callbacks.size;
  }

  /** Wakes the worker thread and releases the epoll set. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.waiting) {
      const done = new Promise<void>((resolve) => (this.drained = resolve));
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(1n);
      write(this.wakeFd, one, 8);
      await done;
    }
    close(this.wakeFd);
    close(this.epfd);
  }

  private control(op: number, fd: number): void {
    const event = Buffer.alloc(epollEventLayout.size);
    event.writeUInt32LE(EPOLLIN, 0);
    event.writeInt32LE(fd, epollEventLayout.dataOffset);
    if (epollCtl(this.epfd, op, fd, event) !== 0) {
      throw new Error(`epoll_ctl(${fd}) failed with errno ${errno()}`);
    }
  }

  private arm(): void {
    if (this.waiting || this.closed) return;
    this.waiting = true;
    epollWait.async(this.epfd, this.events, batch, waitSliceMs, (error, count) => {
      this.waiting = false;
      if (this.closed) {
        this.drained?.();
        return;
      }
      if (error === null || error === undefined) this.dispatch(count);
      if (this.callbacks.size > 0) this.arm();
    });
  }

  private dispatch(count: number): void {
    for (let i = 0; i < count; i++) {
      const fd = this.events.readInt32LE(i * epollEventLayout.size + epollEventLayout.dataOffset);
      const onExit = this.callbacks.get(fd);
      if (onExit === undefined) continue;
      this.unwatch(fd);
      onExit();
    }
  }
}
