import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { json } from './helpers/process.ts';
import { type Service, startService } from './helpers/service.ts';

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

/** Whether a new TCP connection to the port is accepted: 'connected', or the error's code. */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

// Both signals drain: SIGTERM from the kubelet (Knative), SIGINT from a person's Ctrl-C (`make start`).
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} with an idle keep-alive connection: closed at once, exit 0`, async (t) => {
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
    service.kill(signal);
    const { code } = await service.exited;
    t.equal(code, 0, 'exit code 0');
    t.ok(Date.now() - started < 5_000, 'exits long before the 65 s keep-alive timeout');
    t.ok(
      service.stdout.some(
        (l) => json(l).msg === 'shutting down: draining connections' && json(l).signal === signal,
      ),
      `logs the drain, naming ${signal}`,
    );
    t.ok(
      service.stdout.some((l) => json(l).msg === 'shutdown complete'),
      'logs shutdown complete',
    );
  });
}

t.test('SIGTERM with a request in flight: new connections refused, it finishes, exit 0', async (t) => {
  const service = await startService(t, { SHUTDOWN_TIMEOUT_MS: '10000' });
  const inflight = await halfRequest(service.port);
  const readyBefore = await fetch(`${service.url}/readyz`);
  t.equal(readyBefore.status, 200, 'ready before shutdown');
  service.kill('SIGTERM');
  await service.waitForLine((l) => json(l).msg === 'shutting down: draining connections');
  // Still draining (the in-flight request is not even sent whole): a new client is turned away by the
  // closed listener, so traffic moves to other pods while this one finishes what it has.
  t.equal(await connectOutcome(service.port), 'ECONNREFUSED', 'during the drain a new connection is refused');
  // The service was alive after that refusal: the request it was still holding now completes.
  inflight.socket.write('\r\n');
  const response = await inflight.response;
  t.match(response, /^HTTP\/1\.1 200 OK/, 'the in-flight request completed with 200');
  t.match(response, /\r\n\r\n(\d|[1-9]\d|100)\n$/, '... and carried a number');
  const { code } = await service.exited;
  t.equal(code, 0, 'exit code 0 after the drain');
});

t.test(
  'SIGTERM with an idle keep-alive connection and a request in flight: the drain ends by itself',
  async (t) => {
    const timeoutMs = 10_000;
    const service = await startService(t, { SHUTDOWN_TIMEOUT_MS: String(timeoutMs) });
    const inflight = await halfRequest(service.port);
    const agent = new http.Agent({ keepAlive: true });
    t.teardown(() => agent.destroy());
    await new Promise<void>((resolve, reject) => {
      http
        .get(`${service.url}/healthz`, { agent }, (res) => res.resume().on('end', resolve))
        .on('error', reject);
    });
    const [idle] = Object.values(agent.freeSockets).flat();
    t.ok(idle, 'a keep-alive connection is open and idle');
    const idleClosed = new Promise((resolve) => idle?.once('close', resolve));
    const started = Date.now();
    service.kill('SIGTERM');
    await service.waitForLine((l) => json(l).msg === 'shutting down: draining connections');
    await idleClosed;
    t.pass('the idle connection was closed by the drain');
    // The in-flight request ends now; its connection, idle after the answer, must be closed by the
    // service rather than left for SHUTDOWN_TIMEOUT_MS to cut.
    inflight.socket.write('\r\n');
    t.match(await inflight.response, /^HTTP\/1\.1 200 OK/, 'the in-flight request completed with 200');
    const { code } = await service.exited;
    const elapsed = Date.now() - started;
    t.equal(code, 0, 'exit code 0');
    t.ok(elapsed < timeoutMs / 2, `exits well before SHUTDOWN_TIMEOUT_MS ${timeoutMs} (${elapsed} ms)`);
    const messages = service.stdout.map((l) => json(l).msg);
    t.ok(messages.includes('shutdown complete'), 'logs shutdown complete: the drain finished');
    t.notOk(
      messages.includes('shutdown timed out: closing remaining connections'),
      'no timed-out line: nothing had to be cut',
    );
  },
);

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
  const probe = service.stdout.map(json).find((l) => l.path === '/readyz');
  t.match(
    probe,
    { level: 30, msg: 'request', status: 503 },
    "the probe's 503 is logged at info, not as a failure",
  );
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

/** `count` GET / requests, `concurrency` at a time on keep-alive connections, each with its own X-Request-Id. */
async function burst(url: string, count: number, prefix: string, concurrency = 20): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const id = `${prefix}-${next++}`;
      statuses.push(
        await new Promise<number>((resolve, reject) => {
          http
            .get(`${url}/`, { agent, headers: { 'X-Request-Id': id } }, (res) =>
              res.resume().on('end', () => resolve(res.statusCode ?? 0)),
            )
            .on('error', reject);
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return statuses;
}

const loggedIds = (stdout: string[], prefix: string) =>
  new Set(
    stdout
      .map((l) => json(l))
      .flatMap((l) => (l.msg === 'request' && String(l.reqId).startsWith(prefix) ? [l.reqId] : [])),
  );

t.test('a slow stdout reader: every request line and the shutdown line arrive after SIGTERM', async (t) => {
  const service = await startService(t);
  // The reader stops reading: lines pile up in the pipe, then in the service's buffer.
  service.child.stdout?.pause();
  const statuses = await Promise.race([
    burst(service.url, 3000, 'slow'),
    // A full pipe blocks the service's writes; let the reader catch up now and then, as a slow one does.
    new Promise<never>(() => {
      const timer = setInterval(() => {
        service.child.stdout?.resume();
        setTimeout(() => service.child.stdout?.pause(), 5);
      }, 200);
      t.teardown(() => clearInterval(timer));
    }),
  ]);
  t.equal(statuses.filter((s) => s === 200).length, 3000, 'every request answered 200');
  const code = await stopWhileReaderStalls(service, 300);
  t.equal(code, 0, 'exit code 0');
  t.equal(loggedIds(service.stdout, 'slow-').size, 3000, 'a line for each of the 3000 requests');
  t.equal(json(service.stdout.at(-1) ?? '').msg, 'shutdown complete', 'the shutdown line is the last one');
});

t.test(
  'forced shutdown with a slow reader: request lines and the forced-close line all arrive',
  async (t) => {
    const service = await startService(t, { SHUTDOWN_TIMEOUT_MS: '300' });
    const statuses = await burst(service.url, 500, 'forced');
    t.equal(statuses.length, 500, '500 requests answered');
    const stuck = await halfRequest(service.port);
    service.child.stdout?.pause();
    const code = await stopWhileReaderStalls(service, 600);
    t.equal(code, 0, 'exit code 0');
    t.equal(loggedIds(service.stdout, 'forced-').size, 500, 'a line for each of the 500 requests');
    t.ok(
      service.stdout.some((l) => json(l).msg === 'shutdown timed out: closing remaining connections'),
      'the forced-close line, written just before process.exit, arrived',
    );
    t.equal(await stuck.response, '', 'the stuck client was disconnected');
  },
);

/** SIGTERM while stdout is not read; reading resumes after `stallMs`. The exit code, once stdout is drained. */
async function stopWhileReaderStalls(service: Service, stallMs: number): Promise<number | null> {
  // Listen for the close before anything can end: stdout may close before or after the exit event.
  const drained = new Promise((resolve) => service.child.stdout?.once('close', resolve));
  service.kill('SIGTERM');
  setTimeout(() => service.child.stdout?.resume(), stallMs);
  const { code } = await service.exited;
  await drained;
  return code;
}

t.test('SIGTERM after the stdout reader has gone: the service still exits, exit 0', async (t) => {
  const service = await startService(t);
  t.equal((await fetch(`${service.url}/`)).status, 200, 'a request, so a line is held for stdout');
  // The reader goes away (a log collector that died): every later write to stdout fails with EPIPE.
  service.child.stdout?.destroy();
  const started = Date.now();
  service.kill('SIGTERM');
  const hung = new Promise<{ code: string }>((resolve) => {
    const timer = setTimeout(() => resolve({ code: 'still running after 10 s' }), 10_000);
    t.teardown(() => clearTimeout(timer));
  });
  const { code } = await Promise.race([service.exited, hung]);
  t.equal(code, 0, 'exit 0: the held lines are dropped, not retried forever');
  t.ok(Date.now() - started < 5_000, 'exits at once, not after a kill');
});
