/**
 * Peer credentials are the whole security model: the daemon checks at start-up, not at the
 * first request, that an accepted socket's descriptor can be had and read, and that the
 * kernel features it detected answer on a real connection.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ApolloError } from '../../shared/errors.js';
import type { StatusWire } from '../../shared/wire.js';
import type { KernelFeatures } from './features.js';
import { peerPidfdWorks, readPeerCredentials } from './peer.js';
import { socketDescriptor } from './socket-descriptor.js';

/** Connects to a probe socket in `dir` (0600) and reads its own credentials back; what `status` shows. */
export async function checkPeerCredentials(dir: string, kernel: KernelFeatures): Promise<StatusWire['identity']> {
  const probe = path.join(dir, `.probe-${process.pid}.sock`);
  fs.rmSync(probe, { force: true });
  const server = net.createServer();
  // 0600 from the first instant: nothing in DIR but DIR/devapollo is open to others.
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(probe, resolve));
  } finally {
    process.umask(previous);
  }
  try {
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect(probe);
    const socket = await accepted;
    try {
      const fd = socketDescriptor(socket);
      if (fd === undefined) {
        throw new ApolloError('internal', 'cannot get the descriptor of an accepted socket: peer credentials are unavailable');
      }
      const credentials = readPeerCredentials(fd);
      if (credentials.pid !== process.pid) {
        throw new ApolloError('internal', `SO_PEERCRED gave pid ${credentials.pid}, expected ${process.pid}`);
      }
      if (kernel.peerPidfd && !peerPidfdWorks(fd)) {
        throw new ApolloError('internal', 'the kernel knows SO_PEERPIDFD but gave no pidfd for a connected socket');
      }
    } finally {
      client.destroy();
      socket.destroy();
    }
    return { peer_pidfd: kernel.peerPidfd, pidfd_namespace: kernel.pidfdNamespace, namespace_ids: kernel.namespaceIds };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
