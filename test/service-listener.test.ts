import { once } from 'node:events';
import { get } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { etag } from 'hono/etag';
import { secureHeaders } from 'hono/secure-headers';
import { streamSSE } from 'hono/streaming';
import t, { type Test } from 'tap';
import { createApp } from '../functions/random-number/app.ts';
import { createHttpServer } from '../functions/random-number/http-server.ts';
import { memoryLogger } from './helpers/logs.ts';
import { rawRequest } from './helpers/raw.ts';

/** The server as server.ts builds it, around `app`, on a free loopback port; closed when the test ends. */
async function serve(t: Test, app: Parameters<typeof createHttpServer>[0]) {
  const server = createHttpServer(app);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port };
}

/** The service's app logging into memory at `level`. */
function theApp(options: Partial<Parameters<typeof createApp>[0]> = {}, level = 'info') {
  const logs = memoryLogger(level);
  return { app: createApp({ logger: logs.logger, instance: 'test-host', ...options }), logs };
}

/** Resolves when `promise` does, or fails the test after `ms`: nothing here may hang. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

t.test('the app through the server: the same answers as app.request(), with Content-Length', async (t) => {
  const { url } = await serve(t, theApp({ random: () => 42 }).app);
  const res = await fetch(`${url}/`);
  t.equal(res.status, 200, 'GET / is 200');
  t.equal(await res.text(), '42\n', 'the number and a newline');
  t.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8', 'plain text');
  t.equal(res.headers.get('cache-control'), 'no-store', 'never cached');
  t.equal(res.headers.get('content-length'), '3', 'a length, not chunked');
  const json = await fetch(`${url}/`, { headers: { Accept: 'application/json' } });
  t.match(await json.json(), { number: 42, min: 0, max: 100, instance: 'test-host' }, 'JSON on request');
  const head = await fetch(`${url}/`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD is 200');
  t.equal(await head.text(), '', 'HEAD has no body');
  const post = await fetch(`${url}/`, { method: 'POST', body: 'x' });
  t.equal(post.status, 405, 'POST / is 405');
  t.equal(post.headers.get('allow'), 'GET, HEAD', 'with Allow');
  t.equal((await fetch(`${url}/nope`)).status, 404, 'unknown path is 404');
});

t.test(
  "the server's timeouts are the chosen ones; keep-alive is announced to the proxy in front",
  async (t) => {
    const server = createHttpServer(theApp().app);
    const chosen = { headersTimeout: 20_000, requestTimeout: 30_000, keepAliveTimeout: 65_000 };
    t.match(server, chosen, 'headers 20 s, request 30 s, keep-alive 65 s (http-server.ts says why)');
    const { url } = await serve(t, theApp().app);
    const res = await fetch(`${url}/healthz`);
    t.equal(res.headers.get('keep-alive'), 'timeout=65', 'every answer carries Keep-Alive: timeout=65');
  },
);

t.test(
  'a client that trickles its headers is answered 408 and cut off at 20 s, not up to 50 s',
  async (t) => {
    const { port } = await serve(t, theApp().app);
    const socket = connect(port, '127.0.0.1');
    t.teardown(() => socket.destroy());
    await once(socket, 'connect');
    const started = performance.now();
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    // A header line every 2 s: each arrives well within any idle timeout, the headers never end.
    const trickle = setInterval(() => socket.write(`X-Slow-${Date.now()}: 1\r\n`), 2_000);
    t.teardown(() => clearInterval(trickle));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk;
    });
    await within(once(socket, 'close'), 30_000, 'the server closes the connection');
    const seconds = (performance.now() - started) / 1000;
    t.match(answer, /^HTTP\/1\.1 408 /, 'answered 408 Request Timeout');
    t.ok(
      seconds >= 19 && seconds < 23,
      `cut off after the 20 s headersTimeout, checked every second (${seconds.toFixed(1)} s)`,
    );
  },
);

t.test('request ids: a sane incoming X-Request-Id is echoed, otherwise a UUID is made', async (t) => {
  const { app, logs } = theApp();
  const { url } = await serve(t, app);
  const given = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'abc-123' } });
  t.equal(given.headers.get('x-request-id'), 'abc-123', 'incoming id returned');
  const made = await fetch(`${url}/healthz?probe=1`);
  t.match(made.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'a UUID is made when none is sent');
  const hostile = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'a b<script>' } });
  t.match(hostile.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'an id with odd characters is replaced');
  // hono/request-id's default limit, 255: a trace id up to it passes through whole.
  const longest = 'trace-0123456789_ABC='.repeat(13).slice(0, 255);
  const atLimit = await fetch(`${url}/`, { headers: { 'X-Request-Id': longest } });
  t.equal(atLimit.headers.get('x-request-id'), longest, 'an id of exactly 255 characters is kept and echoed');
  const long = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'a'.repeat(256) } });
  t.match(
    long.headers.get('x-request-id'),
    /^[0-9a-f-]{36}$/,
    'an id over 255 characters is replaced by a UUID',
  );
  const lines = logs.lines().filter((l) => l.msg === 'request');
  t.equal(lines.length, 5, 'one log line per request');
  t.same(
    Object.keys(lines[0] ?? {}).sort(),
    ['durationMs', 'level', 'method', 'module', 'msg', 'name', 'path', 'pid', 'reqId', 'status', 'time'],
    'the line has these fields and no others (no headers)',
  );
  t.match(
    lines[0],
    { level: 30, reqId: 'abc-123', method: 'GET', path: '/', status: 200, module: 'http' },
    'line has id, method, path, status at info',
  );
  t.match(lines[1], { path: '/healthz', reqId: made.headers.get('x-request-id') }, 'the made id is logged');
  t.equal(lines[3]?.reqId, longest, 'the 255-character id is logged as given');
  t.type(lines[0]?.durationMs, 'number', 'line has a duration');
});

t.test("durationMs is the time the app took, not zero: a slow handler's line says so", async (t) => {
  const { app, logs } = theApp();
  // On the service's app, so that its own requestLog middleware times it.
  let handlerMs = 0;
  app.get('/slow', async (c) => {
    const entered = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 60));
    handlerMs = performance.now() - entered;
    return c.text('done');
  });
  const { url } = await serve(t, app);
  const res = await fetch(`${url}/slow`);
  t.equal(await res.text(), 'done', 'the slow route answered');
  t.ok(handlerMs >= 50, `the handler took at least 50 ms (${handlerMs.toFixed(1)} ms)`);
  const line = logs.lines().find((l) => l.path === '/slow');
  const durationMs = Number(line?.durationMs);
  t.ok(durationMs >= 50, `the request line's durationMs is at least 50 (${line?.durationMs})`);
  // The line is rounded to 0.001 ms; it wraps the handler, so it can only be longer.
  t.ok(durationMs >= handlerMs - 0.001, "... and covers the handler's whole time");
});

t.test('LOG_LEVEL=warn: no request lines, answers unchanged', async (t) => {
  const { app, logs } = theApp({}, 'warn');
  const { url } = await serve(t, app);
  const res = await fetch(`${url}/`);
  t.equal(res.status, 200, 'served');
  t.match(res.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'still with a request id');
  t.same(logs.lines(), [], 'nothing logged');
});

t.test(
  'a failing handler: JSON 500, the error logged with the request id, a "request failed" line',
  async (t) => {
    const random = () => {
      throw new Error('entropy ran out');
    };
    const { app, logs } = theApp({ random }, 'warn');
    const { url } = await serve(t, app);
    const res = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'trace-500' } });
    t.equal(res.status, 500, 'status 500');
    t.notMatch(await res.text(), 'entropy', 'the message is not leaked');
    t.match(
      logs.lines(),
      [
        { level: 50, msg: 'unhandled error', reqId: 'trace-500', err: { message: 'entropy ran out' } },
        { level: 50, msg: 'request failed', reqId: 'trace-500', status: 500 },
      ],
      'the error under err with the request id, then the request line at error, so LOG_LEVEL=warn keeps both',
    );
  },
);

t.test('token refusals through the server: a Content-Length, not chunks; the request id', async (t) => {
  const token = 'a'.repeat(40);
  const { url } = await serve(t, theApp({ apiToken: token }).app);
  for (const [what, status, headers] of [
    ['no Authorization', 401, {}],
    ['not Bearer', 400, { Authorization: 'Basic x' }],
    ['a wrong token', 401, { Authorization: `Bearer ${'b'.repeat(40)}` }],
  ] as const) {
    const res = await fetch(`${url}/`, { headers: { ...headers, 'X-Request-Id': 'auth-1' } });
    const body = await res.text();
    t.equal(res.status, status, `${what}: ${status}`);
    t.equal(res.headers.get('content-length'), String(Buffer.byteLength(body)), `${what}: a length`);
    t.equal(res.headers.get('x-request-id'), 'auth-1', `${what}: the request id`);
  }
});

t.test(
  'a Host or target that makes no URL: 400 from @hono/node-server before the app; the server carries on',
  async (t) => {
    const { url, port } = await serve(t, theApp().app);
    for (const [name, payload] of [
      ['Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'],
      ['Host with a path', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n'],
      ['absolute-form URL that does not parse', 'GET http://[::/ HTTP/1.1\r\nHost: a\r\n\r\n'],
    ] as const) {
      t.equal(await rawRequest(port, payload), 400, `${name}: 400`);
    }
    t.equal((await fetch(`${url}/healthz`)).status, 200, 'still serving');
  },
);

/**
 * What a user who adds ordinary Hono middleware to the service gets, through the real server: the
 * service's app behind hono/body-limit, hono/etag and hono/secure-headers, and routes that read a JSON
 * body, stream server-sent events and wait for the client to go away.
 */
t.test('Hono middleware and handlers through the server answer as Hono documents', async (t) => {
  let entered: () => void = () => {};
  const waiting = new Promise<void>((resolve) => {
    entered = resolve;
  });
  let aborted: (reason: unknown) => void = () => {};
  const abort = new Promise<unknown>((resolve) => {
    aborted = resolve;
  });
  const app = new Hono();
  app.use(bodyLimit({ maxSize: 64 }), etag(), secureHeaders());
  app.post('/echo', async (c) => c.json({ got: await c.req.json() }));
  app.get('/stable', (c) => c.text('the same every time'));
  app.get('/events', (c) =>
    streamSSE(c, async (stream) => {
      await stream.writeSSE({ event: 'tick', id: '1', data: 'one' });
      await stream.writeSSE({ data: 'two' });
    }),
  );
  // On the service's app, so that its request id and request line cover it.
  const service = theApp({ random: () => 7 });
  service.app.get('/wait', (c) => {
    entered();
    const { signal } = c.req.raw;
    return new Promise<Response>((resolve) => {
      signal.addEventListener('abort', () => {
        aborted(signal.reason);
        resolve(c.text('nobody is listening'));
      });
    });
  });
  app.route('/', service.app);
  const { url } = await serve(t, app);

  const big = await fetch(`${url}/echo`, { method: 'POST', body: 'x'.repeat(100) });
  t.equal(big.status, 413, 'body-limit: a body over maxSize with a Content-Length → 413');
  const chunks = new ReadableStream({
    start(controller) {
      for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode('0123456789'));
      controller.close();
    },
  });
  const streamed = await fetch(`${url}/echo`, {
    method: 'POST',
    body: chunks,
    duplex: 'half',
  } as RequestInit);
  t.equal(streamed.status, 413, 'body-limit: a chunked body that grows past maxSize → 413');

  const echo = await fetch(`${url}/echo`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{"a":[1,2]}',
  });
  t.equal(echo.status, 200, 'a small JSON body passes the limit');
  t.same(await echo.json(), { got: { a: [1, 2] } }, 'c.req.json() reads the parsed body');

  const first = await fetch(`${url}/stable`);
  const tag = first.headers.get('etag');
  t.match(tag, /^(W\/)?"[^"]+"$/, 'etag: the answer carries an ETag');
  const again = await fetch(`${url}/stable`, { headers: { 'If-None-Match': tag ?? '' } });
  t.equal(again.status, 304, 'etag: a matching If-None-Match → 304');
  t.equal(await again.text(), '', '... with no body');

  const number = await fetch(`${url}/`);
  t.equal(await number.text(), '7\n', "the service's own route still answers");
  for (const res of [first, number]) {
    t.equal(res.headers.get('x-content-type-options'), 'nosniff', 'secure-headers: X-Content-Type-Options');
    t.equal(res.headers.get('x-frame-options'), 'SAMEORIGIN', 'secure-headers: X-Frame-Options');
    t.match(res.headers.get('strict-transport-security'), /^max-age=\d+/, 'secure-headers: HSTS');
  }

  const events = await fetch(`${url}/events`);
  t.equal(events.headers.get('content-type'), 'text/event-stream', 'streamSSE: an event stream');
  t.equal(events.headers.get('content-length'), null, '... with no Content-Length (it is streamed)');
  t.equal(
    await events.text(),
    'event: tick\ndata: one\nid: 1\n\ndata: two\n\n',
    '... read whole by a strict HTTP client: well-formed',
  );

  const req = get(`${url}/wait`);
  req.on('error', () => {}); // the client itself ends the request
  await within(waiting, 5_000, 'the handler runs');
  req.destroy();
  t.ok(await within(abort, 5_000, 'the abort'), "a client that goes away aborts the handler's signal");
  const line = () => service.logs.lines().find((l) => l.path === '/wait');
  await within(
    (async () => {
      while (!line()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    5_000,
    'the request line',
  );
  t.match(
    line(),
    { msg: 'request aborted', status: 200 },
    'its request line says the answer was not delivered',
  );
});
