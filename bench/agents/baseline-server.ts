/**
 * The baseline: a bare node:http server on a Unix socket that answers one path with the
 * same bytes devapollo sends for it (status, Content-Type, ETag, body), with the same
 * server options as the guest server. Nothing else: no identity, no routing table.
 *
 * Arguments: SOCKET PATH BODY ETAG. Prints "listening" once bound; exits on stdin close.
 */
import fs from 'node:fs';
import http from 'node:http';

const [socketPath = '', path = '', body = '', etag = ''] = process.argv.slice(2);
const length = Buffer.byteLength(body, 'utf8');

const server = http.createServer(
  { requireHostHeader: false, keepAliveTimeout: 30_000, headersTimeout: 10_000, requestTimeout: 30_000 },
  (req, res) => {
    if (req.url === path && req.method === 'GET') {
      // A string body goes out with the headers in one write: the cheapest way node:http has.
      res.writeHead(200, { ETag: etag, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': length });
      res.end(body);
    } else {
      res.writeHead(404, { 'Content-Length': 0 });
      res.end();
    }
  },
);
fs.rmSync(socketPath, { force: true });
server.listen(socketPath, () => {
  fs.chmodSync(socketPath, 0o666);
  process.stdout.write('listening\n');
});
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
