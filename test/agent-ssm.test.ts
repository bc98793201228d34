import { join } from 'node:path';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import t, { type Test } from 'tap';
import { fileLines, startAgent } from './helpers/agent.ts';
import { startMoto } from './helpers/moto.ts';
import { startProcess } from './helpers/process.ts';
import { startService } from './helpers/service.ts';

// One emulator for the file: starting moto takes seconds.
const moto = await startMoto(t);
// Independent tests (each its own parameter, service and agent): side by side.
t.jobs = 2;

/** Stores `value` as a SecureString in the emulator, as provision-ec2 does. */
async function putToken(name: string, value: string) {
  const ssm = new SSMClient({
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  try {
    await ssm.send(new PutParameterCommand({ Name: name, Value: value, Type: 'SecureString' }));
  } finally {
    ssm.destroy();
  }
}

/**
 * `token` stored as the SecureString `parameter` and a service that requires it; returns the agent's
 * environment for polling that service with the token read from `parameter`, every second.
 */
async function serviceWithSsmToken(t: Test, parameter: string, token: string) {
  await putToken(parameter, token);
  const service = await startService(t, { API_TOKEN: token });
  return {
    SERVICE_URL: service.url,
    SCHEDULE: '*/1 * * * * *',
    OUTPUT_FILE: join(t.testdir(), 'n.txt'),
    API_TOKEN_PARAMETER: parameter,
  };
}

t.test(
  'API_TOKEN_PARAMETER: the SecureString is read once from SSM (moto) and sent, never logged',
  async (t) => {
    const token = 'ssm-held-token-3141592653589793238';
    const env = await serviceWithSsmToken(t, '/random-number/api-token', token);
    const output = env.OUTPUT_FILE;
    const agent = startAgent(t, { ...moto.env, ...env, LOG_LEVEL: 'trace' });
    t.match(await agent.waitForPoll(), { outcome: 'ok' }, 'the service accepted the token from SSM');
    t.match(
      agent.stdout[0],
      /"auth":"bearer \(SSM parameter\)"/,
      'start line says where the token came from',
    );
    agent.kill();
    await agent.exited;
    t.ok((await fileLines(output)).length >= 1, 'numbers written');
    t.notMatch([...agent.stdout, ...agent.stderr].join('\n'), token, 'the token is in no output line');
  },
);

t.test(
  'no keys in the environment: credentials from the instance role through IMDSv2 (moto serves it)',
  async (t) => {
    const token = 'role-read-token-1618033988749894848';
    const env = await serviceWithSsmToken(t, '/random-number/role-token', token);
    const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_EC2_METADATA_DISABLED, ...noKeys } = moto.env;
    // Where an instance finds 169.254.169.254; moto answers the IMDSv2 token and role credentials. It
    // answers without a token too, so the SDK's IMDSv1 fallback is switched off: only v2 can succeed.
    const agent = startAgent(t, {
      ...noKeys,
      ...env,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: moto.endpoint,
      AWS_EC2_METADATA_V1_DISABLED: 'true',
    });
    t.match(
      await agent.waitForPoll(),
      { outcome: 'ok' },
      'the token read with role credentials was accepted',
    );
    t.match(
      moto.log(),
      /"PUT \/latest\/api\/token HTTP\/1\.1" 200/,
      'the IMDSv2 session token was asked for',
    );
    agent.kill();
    await agent.exited;
    t.notMatch([...agent.stdout, ...agent.stderr].join('\n'), token, 'the token is in no output line');
  },
);

t.test('a missing parameter: one line naming it, exit 1', async (t) => {
  const agent = startProcess(t, process.execPath, [join(import.meta.dirname, '../dist/ec2-agent.mjs')], {
    env: {
      ...moto.env,
      SERVICE_URL: 'http://127.0.0.1:9/',
      OUTPUT_FILE: join(t.testdir(), 'n.txt'),
      API_TOKEN_PARAMETER: '/random-number/missing',
      // This machine runs Node 20, for which the SDK prints a multi-line upgrade notice; Node 22 does not.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  });
  t.equal((await agent.exited).code, 1, 'exit 1');
  t.equal(agent.stderr.length, 1, 'one stderr line');
  t.match(
    agent.stderr[0],
    /^random-number-agent: cannot read the API token from SSM parameter \/random-number\/missing \(API_TOKEN_PARAMETER\): ParameterNotFound/,
    'names the parameter, the variable and the AWS error',
  );
});
