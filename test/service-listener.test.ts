import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import t from 'tap';
import { createApp } from '../functions/random-number/app.ts';
import { LightResponse } from '../functions/random-number/light-response.ts';
import { createListener, type FetchHandler } from '../functions/random-number/node-listener.ts';
import { memoryLogger } from './helpers/logs.ts';
import type { Teardown } from './helpers/process.ts';
import { rawRequest } from './helpers/raw.ts';

/** A real node:http server on a free loopback port with the listener in front of `fetch`. */
async function serve(t: Teardown, fetch: FetchHandler, level = 'info') {
  const logs = memoryLogger(level);
  const errors: unknown[] = [];
  const server = createServer(
    createListener(fetch, {
      logger: logs.logger.child({ module: 'http' }),
      onError: (err) => errors.push(err),
    }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, logs, errors };
}

const appFetch = (options: Partial<Parameters<typeof createApp>[0]> = {}) => {
  const { logger } = memoryLogger();
  return createApp({ logger, instance: 'test-host', ...options }).fetch as FetchHandler;
};

t.test('the app through the listener: same answers as app.request(), with Content-Length', async (t) => {
  const { url } = await serve(t, appFetch({ random: () => 42 }));
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

t.test('request ids: a sane incoming X-Request-Id is echoed, otherwise a UUID is made', async (t) => {
  const { url, logs } = await serve(t, appFetch());
  const given = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'abc-123' } });
  t.equal(given.headers.get('x-request-id'), 'abc-123', 'incoming id returned');
  const made = await fetch(`${url}/healthz`);
  t.match(made.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'a UUID is made when none is sent');
  const hostile = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'a b<script>' } });
  t.match(hostile.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'an id with odd characters is replaced');
  const long = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'a'.repeat(256) } });
  t.not(long.headers.get('x-request-id'), 'a'.repeat(256), 'an id over 255 characters is replaced');
  const lines = logs.lines().filter((l) => l.msg === 'request');
  t.equal(lines.length, 4, 'one log line per request');
  t.match(
    lines[0],
    { level: 30, reqId: 'abc-123', method: 'GET', path: '/', status: 200, module: 'http' },
    'line has id, method, path, status at info',
  );
  t.match(lines[1], { path: '/healthz', reqId: made.headers.get('x-request-id') }, 'the made id is logged');
  t.type(lines[0]?.durationMs, 'number', 'line has a duration');
});

t.test('LOG_LEVEL=warn: no request lines, answers unchanged', async (t) => {
  const { url, logs } = await serve(t, appFetch(), 'warn');
  t.equal((await fetch(`${url}/`)).status, 200, 'served');
  t.same(logs.lines(), [], 'nothing logged');
});

t.test(
  'a failing handler: JSON 500, the error logged with the request id, a "request failed" line',
  async (t) => {
    const { logger, lines: appLines } = memoryLogger();
    const app = createApp({
      logger,
      random: () => {
        throw new Error('entropy ran out');
      },
    });
    const { url, logs } = await serve(t, app.fetch as FetchHandler);
    const res = await fetch(`${url}/`, { headers: { 'X-Request-Id': 'trace-500' } });
    t.equal(res.status, 500, 'status 500');
    t.notMatch(await res.text(), 'entropy', 'the message is not leaked');
    t.match(
      appLines().find((l) => l.msg === 'unhandled error'),
      { reqId: 'trace-500', err: { message: 'entropy ran out' } },
      'the app logs the error under err with the request id',
    );
    t.match(
      logs.lines().find((l) => l.reqId === 'trace-500'),
      { level: 50, msg: 'request failed', status: 500 },
      'the request line is at error level',
    );
  },
);

t.test('a Host or target that makes no URL: JSON 400, logged, and the server carries on', async (t) => {
  const { url, port, logs } = await serve(t, appFetch());
  for (const [name, payload] of [
    ['Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'],
    ['Host with a port out of range', 'GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n'],
    ['Host with a path', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n'],
    ['absolute-form URL that does not parse', 'GET http://[::/ HTTP/1.1\r\nHost: a\r\n\r\n'],
  ] as const) {
    t.equal(await rawRequest(port, payload), 400, `${name}: 400`);
  }
  t.equal(logs.lines().filter((l) => l.status === 400).length, 4, 'each got its log line');
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'still serving');
});

t.test('a handler answering with a stream: the real Response is written whole', async (t) => {
  const app = new Hono();
  app.get('/stream', () => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('one '));
        controller.enqueue(new TextEncoder().encode('two'));
        controller.close();
      },
    });
    const res = new Response(body, { status: 201, headers: { 'X-Kind': 'stream' } });
    t.notOk(res instanceof LightResponse, 'a real Response, as Hono and other code may return');
    return res;
  });
  const { url, logs } = await serve(t, app.fetch as FetchHandler);
  const res = await fetch(`${url}/stream`);
  t.equal(res.status, 201, 'status kept');
  t.equal(res.headers.get('x-kind'), 'stream', 'headers kept');
  t.equal(await res.text(), 'one two', 'body whole');
  t.match(logs.lines()[0], { path: '/stream', status: 201 }, 'logged');
});

t.test('LightResponse reads like a Response', async (t) => {
  const res = new LightResponse('{"a":1}', { status: 202, headers: { 'Content-Type': 'application/json' } });
  t.ok(res instanceof LightResponse, 'a string body stays light');
  t.equal(res.status, 202, 'status');
  t.equal(res.ok, true, 'ok');
  t.equal(res.headers.get('CONTENT-TYPE'), 'application/json', 'headers are case-insensitive');
  t.same(await res.clone().json(), { a: 1 }, 'json() of a clone');
  t.equal(await res.text(), '{"a":1}', 'text()');
  t.equal(new LightResponse('x').headers.get('content-type'), 'text/plain;charset=UTF-8', 'default type');
  const headOf = new LightResponse(null, res);
  t.equal(headOf.status, 202, 'a Response as init carries its status (as Hono does for HEAD)');
  t.equal(headOf.headers.get('content-type'), 'application/json', '... and its headers');
  t.equal(new Uint8Array(await res.arrayBuffer()).length, 7, 'arrayBuffer() through the real Response');
  const real = new Response(null, res as unknown as Response);
  t.equal(real.status, 202, 'a real Response made from a light one (Hono, for HEAD) keeps the status');
  t.equal(real.headers.get('content-type'), 'application/json', '... and the headers');
  t.ok(new LightResponse(null) instanceof LightResponse, 'instanceof tells them apart');
  t.notOk(real instanceof LightResponse, '... both ways');
});
