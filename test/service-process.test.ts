import { chmod, copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { json, startProcess } from './helpers/process.ts';
import { SERVICE_BUNDLE, type Service, startService } from './helpers/service.ts';

/** The whole HTTP contract, asserted against a running process. */
async function checkContract(t: Test, service: Service, token?: string) {
  const auth: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const first = await fetch(`${service.url}/`, { headers: { ...auth, Accept: 'application/json' } });
  t.equal(first.status, 200, 'GET / (JSON) → 200');
  const body = (await first.json()) as Record<string, unknown>;
  t.equal(body.coldStart, true, 'first number of the process: coldStart true');
  t.ok(
    Number.isInteger(body.number) && (body.number as number) >= 0 && (body.number as number) <= 100,
    'number is an integer 0..100',
  );
  t.match(body, { min: 0, max: 100, instance: String }, 'min, max, instance');
  t.ok(!Number.isNaN(Date.parse(body.generatedAt as string)), 'generatedAt is a date');

  const text = await fetch(`${service.url}/`, { headers: auth });
  t.equal(text.headers.get('content-type'), 'text/plain; charset=utf-8', 'GET / → text/plain; charset=utf-8');
  t.match(await text.text(), /^(\d|[1-9]\d|100)\n$/, 'GET / → the number and a newline');
  const again = (await (
    await fetch(`${service.url}/`, { headers: { ...auth, Accept: 'application/json' } })
  ).json()) as {
    coldStart: boolean;
  };
  t.equal(again.coldStart, false, 'later numbers: coldStart false');

  const head = await fetch(`${service.url}/`, { method: 'HEAD', headers: auth });
  t.equal(head.status, 200, 'HEAD / → 200');
  t.equal((await head.arrayBuffer()).byteLength, 0, 'HEAD / → no body');
  const post = await fetch(`${service.url}/`, { method: 'POST', headers: auth });
  t.equal(post.status, 405, 'POST / → 405');
  t.equal(post.headers.get('allow'), 'GET, HEAD', 'POST / → Allow: GET, HEAD');
  const missing = await fetch(`${service.url}/missing`);
  t.equal(missing.status, 404, 'unknown path → 404');
  t.match(await missing.json(), { error: 'not_found' }, 'unknown path → JSON error');
  t.equal((await fetch(`${service.url}/healthz`)).status, 200, '/healthz → 200 without a token');
  t.equal((await fetch(`${service.url}/readyz`)).status, 200, '/readyz → 200 without a token');
  const withId = await fetch(`${service.url}/healthz`, { headers: { 'X-Request-Id': 'trace-1' } });
  t.equal(withId.headers.get('x-request-id'), 'trace-1', 'X-Request-Id echoed');
}

t.test('the built bundle serves the whole contract and logs one JSON line per request', async (t) => {
  const service = await startService(t);
  await checkContract(t, service);
  await fetch(`${service.url}/healthz`, { headers: { 'X-Request-Id': 'logged-id' } });
  const line = await service.waitForLine((l) => json(l).reqId === 'logged-id');
  t.match(
    json(line),
    { method: 'GET', path: '/healthz', status: 200, durationMs: Number },
    'request line fields',
  );
  t.ok(
    service.stdout.every((l) => json(l).level !== undefined),
    'every stdout line is JSON (not a terminal)',
  );
});

t.test('at a terminal the lines are for a person, not JSON', async (t) => {
  // script(1) gives the bundle a pseudo-terminal for stdout, as a person's shell does.
  const command = `exec "${process.execPath}" "${SERVICE_BUNDLE}"`;
  const env = { PORT: '0', HOST: '127.0.0.1' };
  const service = startProcess(t, 'script', ['-qec', command, '/dev/null'], { env });
  const line = await service.waitForLine((l) => l.includes('listening'));
  t.match(
    line,
    /^\[\d\d:\d\d:\d\d\.\d{3}\] .*INFO.* \(random-number\): .*listening/,
    'time, level, name, message',
  );
  t.same(json(line), {}, 'not a JSON line');
  service.kill('SIGTERM');
  t.equal((await service.exited).code, 0, 'script ends with the service it ran');
});

t.test('with API_TOKEN the bundle needs the token on / and never logs it', async (t) => {
  const token = 'tok-4f1c0a9e77b2-0123456789abcdef0123';
  const service = await startService(t, { API_TOKEN: token, LOG_LEVEL: 'trace' });
  const denied = await fetch(`${service.url}/`);
  t.equal(denied.status, 401, 'no token → 401');
  t.match(denied.headers.get('www-authenticate'), /^Bearer/, '401 carries WWW-Authenticate: Bearer');
  t.equal(
    (await fetch(`${service.url}/`, { headers: { Authorization: 'Bearer nope' } })).status,
    401,
    'wrong token → 401',
  );
  await checkContract(t, service, token);
  service.kill('SIGTERM');
  await service.exited;
  t.notMatch([...service.stdout, ...service.stderr].join('\n'), token, 'the token is in no output line');
});

t.test('an empty API_TOKEN= runs without auth, and a warning line says so', async (t) => {
  const service = await startService(t, { API_TOKEN: '' });
  t.equal((await fetch(`${service.url}/`)).status, 200, 'treated as unset: / answers without a token');
  const warning = service.stdout.map(json).find((line) => line.level === 40);
  t.match(
    warning?.msg,
    /API_TOKEN is set but empty: .*WITHOUT auth/,
    'one warn line says the service runs open',
  );
  const set = await startService(t, {});
  t.notOk(
    set.stdout.map(json).some((line) => line.level === 40),
    'no such line when API_TOKEN is not set at all',
  );
});

t.test(
  'a copy of the bundle alone in an empty folder serves the contract (what the image holds)',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'rn-bundle-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const alone = join(dir, 'random-number.mjs');
    await copyFile(SERVICE_BUNDLE, alone);
    t.same(await readdir(dir), ['random-number.mjs'], 'the folder holds the bundle and nothing else');
    const service = await startService(t, {}, alone);
    await checkContract(t, service);
  },
);

t.test('bad configuration: one clear line naming the variable, exit 1, no stack trace', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: 'eighty' }, /PORT must be a whole number from 0 to 65535 \(got "eighty"\)/],
    [{ PORT: '70000' }, /PORT must be a whole number/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/],
    [{ SHUTDOWN_TIMEOUT_MS: '-5' }, /SHUTDOWN_TIMEOUT_MS must be a whole number/],
    [{ API_TOKEN: 'has space' }, /API_TOKEN must be a Bearer token: letters, digits/],
  ];
  for (const [env, expected] of cases) {
    const name = Object.keys(env)[0];
    const proc = startProcess(t, process.execPath, [SERVICE_BUNDLE], { env });
    const { code } = await proc.exited;
    t.equal(code, 1, `${name}: exit code 1`);
    t.equal(proc.stderr.length, 1, `${name}: exactly one line on stderr`);
    t.match(proc.stderr[0], expected, `${name}: the line names the variable and what is allowed`);
    t.notMatch(proc.stderr.join('\n'), /\n\s+at |\.ts:\d+/, `${name}: no stack trace`);
  }
  const secret = startProcess(t, process.execPath, [SERVICE_BUNDLE], { env: { API_TOKEN: 'leak me' } });
  await secret.exited;
  t.notMatch(secret.stderr.join('\n'), 'leak me', 'a rejected token value is not echoed');
});

t.test('a port already in use: one line naming the port and the fix, exit 1, no stack trace', async (t) => {
  const first = await startService(t);
  const second = startProcess(t, process.execPath, [SERVICE_BUNDLE], {
    env: { PORT: String(first.port), HOST: '127.0.0.1' },
  });
  const { code } = await second.exited;
  t.equal(code, 1, 'exit code 1');
  t.same(second.stdout, [], 'no log lines: it never listened');
  t.equal(second.stderr.length, 1, 'exactly one line on stderr');
  t.match(
    second.stderr[0],
    new RegExp(`^random-number: PORT ${first.port} is in use: .*set PORT to a free port`),
    'the line names the port, the cause and the fix',
  );
});

t.test('a port below 1024 without the privilege: one line with the fix, exit 1', async (t) => {
  // As root (make test), the bundle runs as nobody, from a folder that user can read (in /tmp).
  const dir = await mkdtemp(join(tmpdir(), 'rn-privileged-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const bundle = join(dir, 'random-number.mjs');
  await copyFile(SERVICE_BUNDLE, bundle);
  // A network namespace of its own: there ports below 1024 need the privilege whatever this machine's
  // net.ipv4.ip_unprivileged_port_start says (container runtimes often set it to 0). Its loopback is
  // down, so the bind is to every address, which needs no interface up.
  const asNobody = ['unshare', '--net', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
  // tap adds its loader to a child's NODE_OPTIONS, and it could not write its record as nobody.
  const args = [
    '-u',
    'NODE_OPTIONS',
    ...(process.getuid?.() === 0 ? asNobody : []),
    process.execPath,
    bundle,
  ];
  const proc = startProcess(t, 'env', args, { env: { PORT: '80', HOST: '0.0.0.0' } });
  t.equal((await proc.exited).code, 1, 'exit code 1');
  t.same(
    proc.stderr,
    ['random-number: PORT 80 needs privileges to bind (EACCES): set PORT to 1024 or above'],
    'exactly the one line: the port, the cause and the fix',
  );
});

t.test('a HOST that cannot be bound: one line naming it and the fix, exit 1, no stack trace', async (t) => {
  // 192.0.2.1 (TEST-NET-1, RFC 5737) is an address of no interface here: EADDRNOTAVAIL.
  const proc = startProcess(t, process.execPath, [SERVICE_BUNDLE], { env: { PORT: '0', HOST: '192.0.2.1' } });
  const { code } = await proc.exited;
  t.equal(code, 1, 'exit code 1');
  t.equal(proc.stderr.length, 1, 'exactly one line on stderr');
  t.match(
    proc.stderr[0],
    /^random-number: HOST 192\.0\.2\.1 cannot be bound \(EADDRNOTAVAIL\): set HOST to an address of this machine/,
    'the line names the address, the cause and the fix',
  );
});
