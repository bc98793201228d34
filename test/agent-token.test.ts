import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import t from 'tap';
import { type ParameterReader, resolveToken, ssmReader } from '../ec2-agent/token.ts';
import { startStub } from './helpers/agent.ts';

const answering =
  (value: string | undefined): (() => ParameterReader) =>
  () =>
  async () =>
    value;
const failing =
  (name: string): (() => ParameterReader) =>
  () =>
  async () => {
    throw Object.assign(new Error(`${name} happened`), { name });
  };
const none = () => {
  throw new Error('SSM must not be called');
};

t.test('API_TOKEN as given, nothing when neither is set, SSM never asked', async (t) => {
  const given = 'abc-0123456789abcdef0123456789abcdef';
  t.equal(await resolveToken({ apiToken: given, apiTokenParameter: undefined }, none), given, 'API_TOKEN');
  t.equal(
    await resolveToken({ apiToken: undefined, apiTokenParameter: undefined }, none),
    undefined,
    'no token',
  );
});

t.test('API_TOKEN_PARAMETER: the decrypted value, trimmed', async (t) => {
  let asked: unknown;
  const reader = () => async (name: string) => {
    asked = name;
    return 'from-ssm-0123456789abcdef0123456789\n';
  };
  t.equal(
    await resolveToken({ apiToken: undefined, apiTokenParameter: '/p' }, reader),
    'from-ssm-0123456789abcdef0123456789',
    'value',
  );
  t.equal(asked, '/p', 'the named parameter is read');
});

t.test(
  'failures are TokenError (exit 1, retried by systemd: fixable in AWS without touching the instance); values never echoed',
  async (t) => {
    const source = { apiToken: undefined, apiTokenParameter: '/random-number/api-token' };
    await t.rejects(
      resolveToken(source, failing('ParameterNotFound')),
      {
        name: 'TokenError',
        message: /\/random-number\/api-token \(API_TOKEN_PARAMETER\): ParameterNotFound/,
      },
      'not found',
    );
    await t.rejects(
      resolveToken(source, failing('AccessDeniedException')),
      { name: 'TokenError' },
      'access denied',
    );
    await t.rejects(
      resolveToken(source, failing('ThrottlingException')),
      { name: 'TokenError' },
      'throttled: may pass',
    );
    await t.rejects(
      resolveToken(source, answering('has a space')),
      {
        name: 'TokenError',
        message:
          /^(?!.*has a space)the value of SSM parameter \/random-number\/api-token \(API_TOKEN_PARAMETER\) must be a Bearer token/,
      },
      'a bad value: what the value must be, the value not echoed',
    );
    await t.rejects(resolveToken(source, answering(undefined)), { name: 'TokenError' }, 'no value');
  },
);

t.test('an SSM endpoint that never answers: bounded (SDK retries included), TokenError', async (t) => {
  const stub = await startStub(t, () => {});
  const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
  const reader = () => ssmReader({ AWS_REGION: 'us-east-1' }, { endpoint: stub.url, credentials });
  const started = Date.now();
  await t.rejects(
    resolveToken({ apiToken: undefined, apiTokenParameter: '/p' }, reader, 300),
    { name: 'TokenError', message: /cannot read the API token/ },
    'gives up',
  );
  t.ok(Date.now() - started < 3000, `within the bound (${Date.now() - started} ms)`);
});

t.test(
  "by default the read gives up before install.sh's wait for the `started` line ends (an SSM endpoint that never answers)",
  async (t) => {
    // install.sh polls `seq N` times, `sleep S` apart, for the line the agent logs once past the read.
    const script = readFileSync(resolve(import.meta.dirname, '../ec2-agent/install.sh'), 'utf8');
    const [, rounds, pause] =
      /for _ in \$\(seq (\d+)\); do\n(?:.*\n)*?\s*sleep ([\d.]+)\n/.exec(script) ?? [];
    const waitMs = Number(rounds) * Number(pause) * 1000;
    t.ok(waitMs > 0, `install.sh waits ${waitMs} ms for the started line`);
    const stub = await startStub(t, () => {});
    const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
    const reader = () => ssmReader({ AWS_REGION: 'us-east-1' }, { endpoint: stub.url, credentials });
    const started = Date.now();
    // No timeoutMs: the agent's own default. Bounded by install.sh's wait, so a longer default fails
    // here instead of hanging the test.
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      resolveToken({ apiToken: undefined, apiTokenParameter: '/p' }, reader).catch((err: Error) => err),
      new Promise((done) => {
        timer = setTimeout(done, waitMs, 'still reading');
      }),
    ]);
    clearTimeout(timer);
    const elapsed = Date.now() - started;
    t.match(
      outcome,
      { name: 'TokenError', message: /cannot read the API token/ },
      'gave up with a TokenError',
    );
    t.ok(
      elapsed < waitMs,
      `${outcome instanceof Error ? 'gave up' : 'still reading'} after ${elapsed} ms: before install.sh stops waiting (${waitMs} ms)`,
    );
  },
);

t.test('API_TOKEN_PARAMETER without a region: a ConfigError saying what to set', async (t) => {
  t.throws(() => ssmReader({}), { name: 'ConfigError', message: /needs AWS_REGION/ }, 'no region');
  t.type(ssmReader({ AWS_DEFAULT_REGION: 'eu-west-1' }), 'function', 'AWS_DEFAULT_REGION is enough');
});

t.test(
  "the endpoint is that of the region's partition, as the SDK resolves it (aws-cn: amazonaws.com.cn)",
  async (t) => {
    // The endpoint must come from the region alone here, not from an emulator's variables.
    delete process.env.AWS_ENDPOINT_URL;
    delete process.env.AWS_ENDPOINT_URL_SSM;
    const hosts: string[] = [];
    // Records where the request would go and sends nothing: no traffic leaves the machine.
    const requestHandler = {
      handle: async (request: { hostname: string }) => {
        hosts.push(request.hostname);
        throw new Error('not sent');
      },
    };
    const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
    for (const region of ['cn-north-1', 'us-east-1']) {
      const read = ssmReader({ AWS_REGION: region }, { credentials, requestHandler, maxAttempts: 1 });
      await t.rejects(read('/p', AbortSignal.timeout(5000)), /not sent/, `${region}: the request was made`);
    }
    t.same(
      hosts,
      ['ssm.cn-north-1.amazonaws.com.cn', 'ssm.us-east-1.amazonaws.com'],
      'one endpoint per partition',
    );
  },
);
