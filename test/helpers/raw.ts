import net from 'node:net';

/**
 * Writes raw bytes to a server and resolves with its first final status code; 'closed' when the server
 * closed (or reset) the connection without one; 'timeout' when it did neither within `timeoutMs`: a
 * server that hangs on a request must not pass for one that refused it.
 */
export function rawRequest(
  port: number,
  payload: string,
  timeoutMs = 2_000,
): Promise<number | 'closed' | 'timeout'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (timedOut = false) => {
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      resolve(timedOut ? 'timeout' : m ? Number(m[1]) : 'closed');
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.on('data', (chunk) => {
      data += chunk;
      if (/^HTTP\/1\.[01] (?!100)\d{3}/.test(data)) done();
    });
    socket.on('close', () => done());
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? done() : reject(err)));
    socket.write(payload);
  });
}
