import { join } from 'node:path';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  IAMClient,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import t, { type Test } from 'tap';
import { startAgent } from './helpers/agent.ts';
import { startMoto } from './helpers/moto.ts';
import { json } from './helpers/process.ts';

// moto with IAM enforcement: after the first 6 requests (the set-up below), every request must carry a
// Signature V4 that moto recomputes with the key's secret, and the key's policy must allow the action.
// The agent bundle reads its token through the SDK with each key; what an operator sees is checked.
const SETUP_REQUESTS = '6';
const moto = await startMoto(t, { env: { INITIAL_NO_AUTH_ACTION_COUNT: SETUP_REQUESTS } });
const admin = { accessKeyId: 'test', secretAccessKey: 'test' };
const region = 'us-east-1';
const iam = new IAMClient({ endpoint: moto.endpoint, region, credentials: admin });
const ssm = new SSMClient({ endpoint: moto.endpoint, region, credentials: admin });
t.teardown(() => {
  iam.destroy();
  ssm.destroy();
});

const parameter = '/random-number/api-token';
const token = 'signed-read-token-2718281828459045';
await ssm.send(new PutParameterCommand({ Name: parameter, Value: token, Type: 'SecureString' }));
await iam.send(new CreateUserCommand({ UserName: 'agent' }));
await iam.send(
  new PutUserPolicyCommand({
    UserName: 'agent',
    PolicyName: 'read-token',
    PolicyDocument: JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'ssm:GetParameter', Resource: '*' }],
    }),
  }),
);
const key = (await iam.send(new CreateAccessKeyCommand({ UserName: 'agent' }))).AccessKey;
await iam.send(new CreateUserCommand({ UserName: 'nobody' }));
const other = (await iam.send(new CreateAccessKeyCommand({ UserName: 'nobody' }))).AccessKey;

/** The agent bundle reading the token with these keys (the SDK's environment credentials). */
function agentWith(t: Test, id = '', secret = '') {
  return startAgent(t, {
    ...moto.env,
    AWS_ACCESS_KEY_ID: id,
    AWS_SECRET_ACCESS_KEY: secret,
    SERVICE_URL: 'http://127.0.0.1:9/',
    OUTPUT_FILE: join(t.testdir(), 'n.txt'),
    API_TOKEN_PARAMETER: parameter,
  });
}

t.test('a permitted key: the signed read is accepted and the agent starts with the token', async (t) => {
  const agent = agentWith(t, key?.AccessKeyId, key?.SecretAccessKey);
  const started = json(await agent.waitForLine((l) => json(l).msg === 'started'));
  t.equal(started.auth, 'bearer (SSM parameter)', 'the token came from the parameter');
  agent.kill();
  await agent.exited;
  t.notMatch(agent.stdout.join('\n'), token, 'the token is in no log line');
});

// moto's IAM layer refuses in XML, which no SSM endpoint sends, so the SDK cannot read a code from it:
// the line carries the HTTP status instead (real SSM's refusals also name their code).
for (const [name, id, secret] of [
  ['a wrong secret', key?.AccessKeyId, `${key?.SecretAccessKey}x`],
  ['a key whose policy does not allow GetParameter', other?.AccessKeyId, other?.SecretAccessKey],
  ['a key IAM does not know', 'AKIAUNKNOWN000000000', 'nope'],
] as const) {
  t.test(`${name}: refused; one line naming the parameter, exit 1 (systemd retries)`, async (t) => {
    const agent = agentWith(t, id, secret);
    t.equal((await agent.exited).code, 1, 'exit 1');
    t.equal(agent.stderr.length, 1, 'one stderr line');
    t.match(
      agent.stderr[0],
      `cannot read the API token from SSM parameter ${parameter}`,
      'names the parameter',
    );
    t.match(agent.stderr[0], '(HTTP 403)', 'says the read was refused');
  });
}
