# Throwaway: in container A, take the init's stdout (the monitor's log pipe) with pidfd_getfd and hand it over.
import socket, os, ctypes
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(1)
fd = libc.syscall(438, pidfd, 1, 0)
assert fd >= 0, ctypes.get_errno()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect('\0rt-logpipe')
socket.send_fds(s, [b'x'], [fd])
print('sent', os.readlink('/proc/self/fd/%d' % fd))
