import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { createPoller, type PollError, parseAnswer } from '../ec2-agent/poll.ts';
import { startStub } from './helpers/agent.ts';
import { selfSigned } from './helpers/tls.ts';

t.test('parseAnswer: only an integer 0..100 is a number', async (t) => {
  t.same(parseAnswer('text/plain; charset=utf-8', '42\n'), { number: 42, coldStart: undefined }, 'plain 42');
  t.same(parseAnswer('', '0'), { number: 0, coldStart: undefined }, 'no content type, 0');
  t.same(parseAnswer('text/plain', '100\n'), { number: 100, coldStart: undefined }, 'plain 100');
  t.same(
    parseAnswer('application/json', '{"number":7,"coldStart":true}'),
    { number: 7, coldStart: true },
    'JSON with coldStart',
  );
  t.same(parseAnswer('application/json', '55'), { number: 55, coldStart: undefined }, 'a bare JSON number');
  const bad: [string, string, string][] = [
    ['text/plain', '150', 'above 100'],
    ['text/plain', '-1', 'negative'],
    ['text/plain', '42.5', 'a fraction'],
    ['text/plain', '', 'empty'],
    ['text/plain', '42abc', 'digits then letters'],
    ['text/plain', '0x2a', 'hex'],
    ['text/plain', '4 2', 'two numbers'],
    ['text/html', '<html><body>42</body></html>', 'HTML'],
    ['text/html', '42', 'a number sent as HTML'],
    ['application/json', '{"number":150}', 'JSON above 100'],
    ['application/json', '{"number":42.5}', 'JSON fraction'],
    ['application/json', '{"number":"42"}', 'JSON string'],
    ['application/json', '{"value":42}', 'JSON without number'],
    ['application/json', '{"number":', 'JSON that does not parse'],
    ['application/json', 'null', 'JSON null'],
  ];
  for (const [type, body, what] of bad) {
    t.throws(() => parseAnswer(type, body), { message: /invalid answer/ }, `rejected: ${what}`);
  }
  t.same(
    parseAnswer('application/problem+json', '{"number":5}'),
    { number: 5, coldStart: undefined },
    'any +json type is JSON',
  );
  t.same(
    parseAnswer('application/json', '{"number":5,"coldStart":"yes"}'),
    { number: 5, coldStart: undefined },
    'a coldStart that is not a boolean is left out, not passed on',
  );
  t.throws(
    () => parseAnswer('text/plain', 'x'.repeat(200)),
    { message: `invalid answer: not a whole number: "${'x'.repeat(60)}…"` },
    'a long body is quoted cut at 60 characters, so the log line stays short',
  );
});

const far = () => Date.now() + 10_000;

/** A stub's handler that answers every request with `status` and no body. */
const answerStatus = (status: number) => (_req: unknown, res: { statusCode: number; end(): void }) => {
  res.statusCode = status;
  res.end();
};

/** The PollError a poll ended with (or a failing stand-in when it did not fail). */
async function failure(pending: Promise<unknown>): Promise<unknown> {
  return pending.then(
    (value) => ({ unexpectedSuccess: value }),
    (err: unknown) => err,
  );
}

t.test('sends Accept and the Bearer token, reads JSON and coldStart', async (t) => {
  const stub = await startStub(t, (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('{"number":12,"coldStart":false}');
  });
  const poll = createPoller({ url: stub.url, token: 's3cret-token', attemptTimeoutMs: 2000 });
  t.same(
    await poll({ deadline: far() }),
    { number: 12, coldStart: false, attempts: 1 },
    'one attempt, the number',
  );
  t.equal(stub.requests[0]?.authorization, 'Bearer s3cret-token', 'Authorization: Bearer <token>');
  t.match(stub.requests[0]?.accept, /^application\/json/, 'asks for JSON first');
  t.match(stub.requests[0]?.accept, /text\/plain/, 'and accepts plain text');
});

t.test('a deadline weeks away (a monthly schedule) still polls: past what a timer holds', async (t) => {
  const stub = await startStub(t, (_req, res) => res.end('9\n'));
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000 });
  const days = (n: number) => Date.now() + n * 24 * 3600 * 1000;
  t.match(await poll({ deadline: days(28) }), { number: 9, attempts: 1 }, '28 days: the number');
  t.match(await poll({ deadline: days(400) }), { number: 9, attempts: 1 }, '400 days: the number');
});

t.test('a redirect is reported with where it points, not followed, not retried', async (t) => {
  const stub = await startStub(t, (_req, res) => {
    res.statusCode = 302;
    res.setHeader('location', '/again');
    res.end();
  });
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(
    await failure(poll({ deadline: far() })),
    {
      reason: 'HTTP 302 (a redirect to "/again": set SERVICE_URL to where the service answers)',
      attempts: 1,
      retryable: false,
    },
    'the status and the Location, once',
  );
  t.equal(stub.requests.length, 1, 'one request: the redirect is not followed (no loop either)');
});

t.test('a redirect to another origin: the token stays home, and no 401 is blamed on it', async (t) => {
  // What fetch would do if it followed: drop Authorization for the new origin, whose 401 then reads as a
  // wrong token. The common case: an http:// SERVICE_URL in front of an ingress that forces https://.
  const target = await startStub(t, (_req, res) => {
    res.statusCode = 401;
    res.end();
  });
  const moved = `http://localhost:${target.port}/`;
  const stub = await startStub(t, (_req, res) => {
    res.writeHead(301, { location: moved }).end();
  });
  const poll = createPoller({ url: stub.url, token: 's3cret-token', attemptTimeoutMs: 2000 });
  const err = await failure(poll({ deadline: far() }));
  t.match(
    err,
    { reason: /^HTTP 301 \(a redirect to "http:\/\/localhost:\d+\/": set SERVICE_URL/ },
    'names where',
  );
  t.notMatch((err as PollError).reason, /API_TOKEN/, 'and does not blame the token');
  t.equal(target.requests.length, 0, 'the other origin was never asked');
});

t.test('an answer that fails with an empty message still says why (a 407)', async (t) => {
  const stub = await startStub(t, answerStatus(407));
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  const err = (await failure(poll({ deadline: far() }))) as PollError;
  t.match(err.reason, /^network error: \S/, `a reason with words in it (${err.reason})`);
});

t.test("a connection closed mid-answer says so, not only undici's code", async (t) => {
  const stub = await startStub(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '10' });
    res.write('4');
    res.socket?.destroy();
  });
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: /^network error: UND_ERR_SOCKET: other side closed$/, attempts: 3 },
    'the code and its message; retried, as another attempt may well work',
  );
});

t.test('no token: no Authorization header', async (t) => {
  const stub = await startStub(t, (_req, res) => res.end('3\n'));
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000 });
  t.match(await poll({ deadline: far() }), { number: 3 }, 'plain body fallback');
  t.equal(stub.requests[0]?.authorization, undefined, 'no Authorization header');
});

t.test('retries 5xx with backoff, then succeeds', async (t) => {
  let calls = 0;
  const stub = await startStub(t, (_req, res) => {
    calls += 1;
    if (calls < 3) {
      res.statusCode = 503;
      res.end('busy');
    } else res.end('77');
  });
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 20, maxMs: 50 } });
  t.match(await poll({ deadline: far() }), { number: 77, attempts: 3 }, 'third attempt answers');
  t.equal(calls, 3, 'the server saw three requests');
});

t.test('gives up after maxAttempts on 500, with the reason', async (t) => {
  const stub = await startStub(t, answerStatus(500));
  const poll = createPoller({
    url: stub.url,
    attemptTimeoutMs: 2000,
    maxAttempts: 3,
    backoff: { baseMs: 10, maxMs: 20 },
  });
  t.match(
    await failure(poll({ deadline: far() })),
    { name: 'PollError', reason: 'HTTP 500', attempts: 3 },
    '3 attempts',
  );
  t.equal(stub.requests.length, 3, 'exactly three requests');
});

t.test("every 5xx is retried, not only the common ones: 501, 505, a CDN's 522; and 408", async (t) => {
  for (const status of [501, 505, 522, 408]) {
    const stub = await startStub(t, answerStatus(status));
    const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
    t.match(
      await failure(poll({ deadline: far() })),
      { reason: `HTTP ${status}`, attempts: 3 },
      `${status}: 3 attempts`,
    );
    t.equal(stub.requests.length, 3, `${status}: the server saw three requests`);
  }
});

t.test('does not retry 4xx or garbage', async (t) => {
  const stub = await startStub(t, answerStatus(401));
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: /^HTTP 401 \(check API_TOKEN/, attempts: 1 },
    '401: one try',
  );
  stub.answer((_req, res) => res.end('<html>oops</html>'));
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: /invalid answer/, attempts: 1 },
    'garbage: one try',
  );
});

t.test('404 and 403 say what to check', async (t) => {
  for (const [status, reason] of [
    [404, /^HTTP 404 \(check SERVICE_URL\)$/],
    [403, /^HTTP 403 \(check API_TOKEN \/ API_TOKEN_PARAMETER\)$/],
  ] as const) {
    const stub = await startStub(t, answerStatus(status));
    const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000 });
    t.match(
      await failure(poll({ deadline: far() })),
      { reason, attempts: 1 },
      `${status}: the hint, one try`,
    );
  }
});

t.test('a TLS failure is not retried, however much time is left', async (t) => {
  const dir = t.testdir();
  const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
  selfSigned({
    key,
    cert,
    subject: '/CN=random-number test',
    extra: ['-addext', 'subjectAltName=IP:127.0.0.1'],
  });
  let connections = 0;
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) =>
    res.end('5'),
  );
  server.on('connection', () => void connections++);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const poll = createPoller({ url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: /^TLS: /, attempts: 1, retryable: false },
    'an untrusted certificate: one attempt, with room for two more',
  );
  t.equal(connections, 1, 'the server saw exactly one connection');
});

t.test("Retry-After is not followed: ky's own backoff, which the deadline can bound", async (t) => {
  let calls = 0;
  const stub = await startStub(t, (_req, res) => {
    calls += 1;
    if (calls === 1) res.writeHead(503, { 'retry-after': '30' }).end();
    else res.end('42');
  });
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  const started = Date.now();
  t.match(await poll({ deadline: far() }), { number: 42, attempts: 2 }, 'the second attempt answers');
  t.ok(Date.now() - started < 2000, `without waiting the 30 s asked for (${Date.now() - started} ms)`);
});

t.test('the backoff doubles from baseMs: the deadline check sees the same waits ky draws from', async (t) => {
  const stub = await startStub(t, answerStatus(503));
  // Waits of at most 200 then 400 ms: both retries fit 1 s, each leaving its attempt 100 ms and more
  // (doubled once more, 400 then 800 ms, the second would not fit).
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 200, maxMs: 1000 } });
  t.match(
    await failure(poll({ deadline: Date.now() + 1000 })),
    { reason: 'HTTP 503', attempts: 3 },
    '200 then 400 ms: three attempts within 1 s',
  );
  // The default backoff, 500 ms then 1 s: 1050 ms fit the first wait and never the second.
  const byDefault = createPoller({ url: stub.url, attemptTimeoutMs: 2000 });
  t.match(
    await failure(byDefault({ deadline: Date.now() + 1050 })),
    { reason: 'HTTP 503', attempts: 2 },
    'the default backoff: 500 ms fits 1050 ms, then 1 s does not',
  );
});

t.test('a retry that would leave less than 100 ms for its attempt is not started', async (t) => {
  const stub = await startStub(t, answerStatus(503));
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 100, maxMs: 100 } });
  t.match(
    await failure(poll({ deadline: Date.now() + 150 })),
    { reason: 'HTTP 503', attempts: 1 },
    'about 50 ms left after a 100 ms wait: one attempt',
  );
});

t.test('network errors are retried and reported', async (t) => {
  const stub = await startStub(t, () => {});
  await stub.close();
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 1000, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: /network error: ECONNREFUSED/, attempts: 3 },
    'refused x3',
  );
});

t.test('each attempt is bounded, and the whole poll by the deadline', async (t) => {
  const stub = await startStub(t, () => {}); // never answers
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 200, backoff: { baseMs: 10, maxMs: 20 } });
  let started = Date.now();
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: /timed out after 200 ms/, attempts: 3 },
    '3 timeouts',
  );
  t.ok(Date.now() - started < 2000, 'three 200 ms attempts end well within 2 s');

  const slow = createPoller({ url: stub.url, attemptTimeoutMs: 5000 });
  started = Date.now();
  t.match(
    await failure(slow({ deadline: Date.now() + 300 })),
    { reason: /timed out/ },
    'the deadline cuts the attempt',
  );
  const took = Date.now() - started;
  t.ok(took >= 250 && took < 1500, `the poll ended at the deadline (${took} ms)`);
});

t.test('a body that never ends is cut by the attempt bound', async (t) => {
  const stub = await startStub(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('4');
  });
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 200, maxAttempts: 1 });
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: /timed out/ },
    'headers came, the body did not: timeout',
  );
  const retrying = createPoller({ url: stub.url, attemptTimeoutMs: 200, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(
    await failure(retrying({ deadline: far() })),
    { reason: /timed out after 200 ms/, attempts: 3 },
    'a stalled body is an attempt that timed out: retried, each attempt cut at its own bound',
  );
});

t.test('429 is retried; a backoff the deadline cannot fit is not started', async (t) => {
  const stub = await startStub(t, answerStatus(429));
  const quick = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(await failure(quick({ deadline: far() })), { reason: 'HTTP 429', attempts: 3 }, '429: retried');
  const slow = createPoller({
    url: stub.url,
    attemptTimeoutMs: 2000,
    backoff: { baseMs: 2000, maxMs: 2000 },
  });
  const started = Date.now();
  t.match(
    await failure(slow({ deadline: Date.now() + 1000 })),
    { reason: 'HTTP 429', attempts: 1 },
    'a 2 s backoff before a 1 s deadline: no retry',
  );
  t.ok(Date.now() - started < 500, 'and no wait either');
});

t.test('aborting during a backoff ends the wait at once', async (t) => {
  const stub = await startStub(t, answerStatus(503));
  const poll = createPoller({
    url: stub.url,
    attemptTimeoutMs: 2000,
    backoff: { baseMs: 5000, maxMs: 5000 },
  });
  const controller = new AbortController();
  const started = Date.now();
  const pending = poll({ deadline: far(), signal: controller.signal });
  setTimeout(() => controller.abort(new Error('shutdown')), 100);
  const err = (await pending.catch((e: unknown) => e)) as PollError;
  t.match(
    err,
    { name: 'PollError', reason: 'HTTP 503; aborted: the agent is stopping' },
    'aborted, the failure before the backoff still named',
  );
  // ky's full jitter draws each wait from 0 up to the backoff: about one run in fifty, the first wait is
  // over before the abort at 100 ms and the abort lands in the second.
  t.ok(err.attempts === 1 || err.attempts === 2, `one attempt, or two after a short draw (${err.attempts})`);
  t.ok(Date.now() - started < 1000, `the backoff did not run out (${Date.now() - started} ms)`);
});

t.test('an oversized body is refused without reading it all', async (t) => {
  // 5 KB and the response kept open: only a reader that stops at the cap can end before the timeout.
  const stub = await startStub(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('9'.repeat(5 * 1024));
  });
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 5000, backoff: { baseMs: 10, maxMs: 20 } });
  const started = Date.now();
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: 'invalid answer: body larger than 4096 bytes', attempts: 1, retryable: false },
    'refused for its size, not timed out, and not retried',
  );
  const took = Date.now() - started;
  t.ok(took < 2000, `refused at the cap, long before the 5 s attempt bound (${took} ms)`);
});

t.test('a 5xx page larger than the cap is still retried', async (t) => {
  const stub = await startStub(t, (_req, res) => {
    res.writeHead(503, { 'content-type': 'text/html' });
    res.end('x'.repeat(10 * 1024));
  });
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 2000, backoff: { baseMs: 10, maxMs: 20 } });
  t.match(
    await failure(poll({ deadline: far() })),
    { reason: 'HTTP 503', attempts: 3 },
    'a 10 KB 503: HTTP 503 after all 3 attempts, not an oversized answer',
  );
  t.equal(stub.requests.length, 3, 'the server saw three requests');
});

t.test('aborting (shutdown) stops the poll without retrying', async (t) => {
  const stub = await startStub(t, () => {});
  const poll = createPoller({ url: stub.url, attemptTimeoutMs: 5000 });
  const controller = new AbortController();
  const pending = poll({ deadline: far(), signal: controller.signal });
  setTimeout(() => controller.abort(new Error('shutdown')), 50);
  const err = (await pending.catch((e: unknown) => e)) as PollError;
  t.equal(err.name, 'PollError', 'a PollError');
  t.match(err.reason, /aborted/, 'says it was aborted');
  t.equal(err.attempts, 1, 'no retry after an abort');
});
