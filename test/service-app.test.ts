import t from 'tap';
import { createApp } from '../functions/random-number/app.ts';
import { memoryLogger } from './helpers/logs.ts';

const fixedClock = () => new Date('2026-01-02T03:04:05.678Z');

function appWith(options: Partial<Parameters<typeof createApp>[0]> = {}) {
  const logs = memoryLogger();
  const app = createApp({ logger: logs.logger, clock: fixedClock, instance: 'test-host', ...options });
  return { app, logs };
}

t.test('GET / answers the number as text/plain with a newline', async (t) => {
  const { app } = appWith({ random: () => 42 });
  const res = await app.request('/');
  t.equal(res.status, 200, 'status 200');
  t.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8', 'plain text, utf-8');
  t.equal(await res.text(), '42\n', 'body is the number and a newline');
  t.equal(res.headers.get('cache-control'), 'no-store', 'random answers are never cached');
});

t.test('the random source is asked for 0..100 inclusive and both bounds are served', async (t) => {
  const asked: [number, number][] = [];
  const values = [0, 100];
  const { app } = appWith({
    random: (min, max) => {
      asked.push([min, max]);
      return values.shift() as number;
    },
  });
  t.equal(await (await app.request('/')).text(), '0\n', 'lower bound 0 is served');
  t.equal(await (await app.request('/')).text(), '100\n', 'upper bound 100 is served');
  t.same(
    asked,
    [
      [0, 100],
      [0, 100],
    ],
    'random(min=0, max=100) each time',
  );
});

t.test('Accept: application/json gets the documented JSON, coldStart only on the first number', async (t) => {
  const { app } = appWith({ random: () => 7 });
  const first = await app.request('/', { headers: { Accept: 'application/json' } });
  t.equal(first.status, 200, 'status 200');
  t.match(first.headers.get('content-type'), /^application\/json/, 'JSON content type');
  t.same(
    await first.json(),
    {
      number: 7,
      min: 0,
      max: 100,
      generatedAt: '2026-01-02T03:04:05.678Z',
      coldStart: true,
      instance: 'test-host',
    },
    'first answer: every field, coldStart true',
  );
  t.equal(first.headers.get('cache-control'), 'no-store', 'a JSON number is never cached either');
  const second = await app.request('/', { headers: { Accept: 'application/json' } });
  t.match(await second.json(), { coldStart: false }, 'second answer: coldStart false');
});

t.test('a text answer also uses up the cold start', async (t) => {
  const { app } = appWith({ random: () => 1 });
  await app.request('/');
  const res = await app.request('/', { headers: { Accept: 'application/json' } });
  t.match(await res.json(), { coldStart: false }, 'coldStart is per process, not per format');
});

t.test('Accept negotiation: text wins when preferred, unknown types fall back to text', async (t) => {
  const { app } = appWith({ random: () => 5 });
  const prefersText = await app.request('/', { headers: { Accept: 'text/plain, application/json;q=0.5' } });
  t.equal(await prefersText.text(), '5\n', 'q-values respected: text preferred');
  const html = await app.request('/', { headers: { Accept: 'text/html' } });
  t.equal(html.status, 200, 'an unsupported Accept still gets an answer');
  t.equal(html.headers.get('content-type'), 'text/plain; charset=utf-8', '... as plain text');
});

t.test('HEAD / answers 200 with headers, no body, and draws no number', async (t) => {
  let draws = 0;
  const { app } = appWith({
    random: () => {
      draws += 1;
      return 3;
    },
  });
  const res = await app.request('/', { method: 'HEAD' });
  t.equal(res.status, 200, 'status 200');
  t.equal(await res.text(), '', 'no body');
  t.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8', 'same content type as GET');
  t.equal(res.headers.get('cache-control'), 'no-store', 'same Cache-Control as GET: no cache keeps it');
  t.equal(draws, 0, 'no number drawn for HEAD');
  const json = await (await app.request('/', { headers: { Accept: 'application/json' } })).json();
  t.equal((json as { coldStart: boolean }).coldStart, true, 'HEAD did not use up the cold start');
});

t.test('other methods on / get 405 with Allow: GET, HEAD', async (t) => {
  const { app } = appWith();
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const res = await app.request('/', { method });
    t.equal(res.status, 405, `${method} → 405`);
    t.equal(res.headers.get('allow'), 'GET, HEAD', `${method} → Allow: GET, HEAD`);
    t.same(
      await res.json(),
      { error: 'method_not_allowed', message: `${method} is not allowed here; use GET or HEAD` },
      `${method} → a small JSON body saying what to use`,
    );
  }
});

t.test('unknown paths get a small JSON 404, whatever the method', async (t) => {
  const { app } = appWith();
  const res = await app.request('/nope/../x?y=1');
  t.equal(res.status, 404, 'status 404');
  const body = (await res.json()) as { error: string; message: string };
  t.equal(body.error, 'not_found', 'error code');
  t.match(body.message, /no route for GET/, 'message names the request');
  // 405 is only for a path that exists: elsewhere any method is 404, so no route is hinted at.
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const other = await app.request('/nope', { method });
    t.equal(other.status, 404, `${method} on an unknown path → 404, not 405`);
    t.equal(other.headers.get('allow'), null, `${method} on an unknown path → no Allow header`);
    t.match(await other.json(), { error: 'not_found' }, `${method} on an unknown path → the not_found body`);
  }
});

t.test('/healthz and /readyz', async (t) => {
  let shuttingDown = false;
  const { app } = appWith({ isShuttingDown: () => shuttingDown });
  t.equal((await app.request('/healthz')).status, 200, 'healthz 200');
  t.equal((await app.request('/readyz')).status, 200, 'readyz 200 while serving');
  shuttingDown = true;
  t.equal((await app.request('/readyz')).status, 503, 'readyz 503 once shutdown began');
  t.equal((await app.request('/healthz')).status, 200, 'healthz still 200 while draining');
  t.equal((await app.request('/healthz', { method: 'POST' })).status, 405, 'POST /healthz → 405');
});

t.test('API_TOKEN: / needs the bearer token; health endpoints never do', async (t) => {
  const token = 's3cret-Token.value-0123456789abcdef';
  const { app, logs } = appWith({ apiToken: token, random: () => 9 });
  const none = await app.request('/');
  t.equal(none.status, 401, 'no Authorization → 401');
  t.equal(
    none.headers.get('www-authenticate'),
    'Bearer realm="random-number"',
    'WWW-Authenticate: Bearer realm',
  );
  t.match(await none.json(), { error: 'unauthorized' }, 'a JSON error body');
  t.match(none.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'a 401 carries a request id too');
  for (const header of [`Bearer ${token}x`, 'Bearer wrong', `bearer ${token.toUpperCase()}`]) {
    const res = await app.request('/', { headers: { Authorization: header } });
    t.equal(res.status, 401, `"${header.replace(token, '<token>')}" → 401`);
    t.match(
      res.headers.get('www-authenticate'),
      /^Bearer error="invalid_token"/,
      '... with error="invalid_token"',
    );
    t.match(await res.json(), { error: 'unauthorized' }, '... and a JSON body');
    t.match(res.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, '... and a request id');
  }
  for (const header of [`Basic ${token}`, token, 'Bearer ', `Bearer ${token} extra`, 'Bearer a"b']) {
    const res = await app.request('/', { headers: { Authorization: header } });
    t.equal(res.status, 400, `malformed "${header.replace(token, '<token>')}" → 400`);
    t.match(
      res.headers.get('www-authenticate'),
      /^Bearer error="invalid_request"/,
      '... error="invalid_request"',
    );
    t.match(await res.json(), { error: 'invalid_request' }, '... and a JSON body');
    t.match(res.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, '... and a request id');
  }
  const ok = await app.request('/', { headers: { Authorization: `Bearer ${token}` } });
  t.equal(ok.status, 200, 'right token → 200');
  t.equal(await ok.text(), '9\n', 'right token → the number');
  const lower = await app.request('/', { headers: { Authorization: `bearer ${token}` } });
  t.equal(lower.status, 200, 'the scheme is case-insensitive');
  t.equal((await app.request('/healthz')).status, 200, 'healthz needs no token');
  t.equal((await app.request('/readyz')).status, 200, 'readyz needs no token');
  t.notMatch(logs.text(), token, 'the token appears in no log line');
  t.same(
    logs.lines().filter((l) => Number(l.level) >= 50),
    [],
    'refused requests are answers, not errors: nothing logged at error',
  );
});

// Request ids and the per-request log line: test/service-listener.test.ts, through the real server.

t.test('an unexpected error is a JSON 500, logged with the error, no stack to the client', async (t) => {
  const { app, logs } = appWith({
    random: () => {
      throw new Error('entropy ran out');
    },
  });
  const res = await app.request('/');
  t.equal(res.status, 500, 'status 500');
  const text = await res.text();
  t.notMatch(text, 'entropy', 'the error message is not leaked to the client');
  t.notMatch(text, /at .*\.ts/, 'no stack trace in the body');
  const errLine = logs.lines().find((l) => l.msg === 'unhandled error');
  t.match(errLine, { err: { message: 'entropy ran out' } }, 'the error is logged under err');
});
