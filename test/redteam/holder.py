# Throwaway: in container B, receive container A's log pipe over an abstract socket and keep writing to it.
import socket, sys, time, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind('\0rt-logpipe'); s.listen(1)
c, _ = s.accept()
msg, fds, flags, addr = socket.recv_fds(c, 16, 4)
fd = fds[0]
n = 0
while True:
    try:
        os.write(fd, (sys.argv[1] + ' %d\n' % n).encode() * 100); n += 1
    except BlockingIOError:
        pass
    time.sleep(float(sys.argv[2]))
