import net from 'node:net';

/**
 * Writes raw bytes to a server and resolves with its first status code, or null when the server
 * closed the connection without answering. Bounded: gives up after `timeoutMs`.
 */
export function rawRequest(port: number, payload: string, timeoutMs = 2_000): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      resolve(m ? Number(m[1]) : null);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('data', (chunk) => {
      data += chunk;
      if (/^HTTP\/1\.[01] (?!100)\d{3}/.test(data)) done();
    });
    socket.on('close', done);
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? done() : reject(err)));
    socket.write(payload);
  });
}
