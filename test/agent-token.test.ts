import t from 'tap';
import { getParameter } from '../ec2-agent/ssm-parameter.ts';
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
  t.equal(await resolveToken({ apiToken: 'abc', apiTokenParameter: undefined }, none), 'abc', 'API_TOKEN');
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
    return 'from-ssm\n';
  };
  t.equal(await resolveToken({ apiToken: undefined, apiTokenParameter: '/p' }, reader), 'from-ssm', 'value');
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
      { name: 'TokenError', message: /^(?!.*has a space)/ },
      'a bad value, not echoed',
    );
    await t.rejects(resolveToken(source, answering(undefined)), { name: 'TokenError' }, 'no value');
  },
);

t.test('an SSM endpoint that never answers: bounded, TokenError', async (t) => {
  const stub = await startStub(t, () => {});
  const reader = () => (name: string, signal: AbortSignal) =>
    getParameter(name, { region: 'us-east-1', endpoint: stub.url, signal });
  process.env.AWS_ACCESS_KEY_ID ??= 'test';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
  const started = Date.now();
  await t.rejects(
    resolveToken({ apiToken: undefined, apiTokenParameter: '/p' }, reader, 300),
    { name: 'TokenError', message: /cannot read the API token/ },
    'gives up',
  );
  t.ok(Date.now() - started < 3000, `within the bound (${Date.now() - started} ms)`);
});

t.test('API_TOKEN_PARAMETER without a region: a ConfigError saying what to set', async (t) => {
  t.throws(() => ssmReader({}), { name: 'ConfigError', message: /needs AWS_REGION/ }, 'no region');
  t.type(ssmReader({ AWS_DEFAULT_REGION: 'eu-west-1' }), 'function', 'AWS_DEFAULT_REGION is enough');
});
