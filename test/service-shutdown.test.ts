import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { json } from './helpers/process.ts';
import { startService } from './helpers/service.ts';

/** Opens a raw connection and sends the start of a request: a request in flight as far as the server knows. */
function halfRequest(port: number): Promise<{ socket: net.Socket; response: Promise<string> }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('GET / HTTP/1.1\r\nHost: a\r\n');
      let data = '';
      socket.on('data', (chunk) => {
        data += chunk;
      });
      const response = new Promise<string>((done) => socket.on('close', () => done(data)));
      resolve({ socket, response });
    });
  });
}

t.test('SIGTERM with an idle keep-alive connection: closed at once, exit 0', async (t) => {
  const service = await startService(t);
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const status = await new Promise<number | undefined>((resolve, reject) => {
    http
      .get(`${service.url}/`, { agent }, (res) => res.resume().on('end', () => resolve(res.statusCode)))
      .on('error', reject);
  });
  t.equal(status, 200, 'a request on a keep-alive connection');
  t.equal(Object.values(agent.freeSockets).flat().length, 1, 'the connection is idle and kept open');
  const started = Date.now();
  service.kill('SIGTERM');
  const { code } = await service.exited;
  t.equal(code, 0, 'exit code 0');
  t.ok(Date.now() - started < 5_000, 'exits long before the 65 s keep-alive timeout');
  t.ok(
    service.stdout.some((l) => json(l).msg === 'shutdown complete'),
    'logs shutdown complete',
  );
});

t.test('SIGTERM with a request in flight: readyz turns 503, the request finishes, exit 0', async (t) => {
  const service = await startService(t, { SHUTDOWN_TIMEOUT_MS: '10000' });
  const inflight = await halfRequest(service.port);
  const readyBefore = await fetch(`${service.url}/readyz`);
  t.equal(readyBefore.status, 200, 'ready before shutdown');
  service.kill('SIGTERM');
  await service.waitForLine((l) => json(l).msg === 'shutting down: draining connections');
  // The listener is closed now: a readiness probe would reach us only over an existing connection,
  // so ask on the in-flight one after its request completes.
  inflight.socket.write('\r\n');
  const response = await inflight.response;
  t.match(response, /^HTTP\/1\.1 200 OK/, 'the in-flight request completed with 200');
  t.match(response, /\r\n\r\n(\d|[1-9]\d|100)\n$/, '... and carried a number');
  const { code } = await service.exited;
  t.equal(code, 0, 'exit code 0 after the drain');
  t.equal(
    await fetch(`${service.url}/healthz`).then(
      () => 'answered',
      () => 'refused',
    ),
    'refused',
    'no new connections after exit',
  );
});

t.test('readyz answers 503 during the drain to a client already connected', async (t) => {
  const service = await startService(t);
  const inflight = await halfRequest(service.port);
  service.kill('SIGTERM');
  await service.waitForLine((l) => json(l).msg === 'shutting down: draining connections');
  // Finish the first request and pipeline a readiness probe behind it on the same connection.
  inflight.socket.write('\r\nGET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const response = await inflight.response;
  t.match(response, /^HTTP\/1\.1 200 OK/, 'the in-flight request got its 200');
  t.match(response, /HTTP\/1\.1 503 Service Unavailable[\s\S]*"shutting down"/, 'the probe after it got 503');
  const { code } = await service.exited;
  t.equal(code, 0, 'exit code 0');
});

t.test('a request that never completes is cut after SHUTDOWN_TIMEOUT_MS, with a log line', async (t) => {
  const service = await startService(t, { SHUTDOWN_TIMEOUT_MS: '300' });
  const stuck = await halfRequest(service.port);
  const started = Date.now();
  service.kill('SIGTERM');
  const { code } = await service.exited;
  const elapsed = Date.now() - started;
  t.equal(code, 0, 'exit code 0: the stop that was asked for happened');
  t.ok(elapsed >= 250 && elapsed < 5_000, `forced after about the timeout (${elapsed} ms)`);
  t.ok(
    service.stdout.some((l) => json(l).msg === 'shutdown timed out: closing remaining connections'),
    'logs the forced close',
  );
  t.equal(await stuck.response, '', 'the stuck client was disconnected');
});
