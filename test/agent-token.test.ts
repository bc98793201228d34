import { SSMClient } from '@aws-sdk/client-ssm';
import t from 'tap';
import { type ParameterReader, resolveToken } from '../ec2-agent/token.ts';
import { startStub } from './helpers/agent.ts';

const answering =
  (value: string | undefined): (() => ParameterReader) =>
  () => ({
    send: async () => ({ Parameter: { Value: value } }),
  });
const failing =
  (name: string): (() => ParameterReader) =>
  () => ({
    send: async () => {
      throw Object.assign(new Error(`${name} happened`), { name });
    },
  });
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
  const client = () => ({
    send: async (command: { input: unknown }) => {
      asked = command.input;
      return { Parameter: { Value: 'from-ssm\n' } };
    },
  });
  t.equal(
    await resolveToken({ apiToken: undefined, apiTokenParameter: '/p' }, client as never),
    'from-ssm',
    'value',
  );
  t.same(asked, { Name: '/p', WithDecryption: true }, 'GetParameter with decryption');
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
  const client = () =>
    new SSMClient({
      endpoint: stub.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
  const started = Date.now();
  await t.rejects(
    resolveToken({ apiToken: undefined, apiTokenParameter: '/p' }, client, 300),
    { name: 'TokenError', message: /cannot read the API token/ },
    'gives up',
  );
  t.ok(Date.now() - started < 3000, `within the bound (${Date.now() - started} ms)`);
});
