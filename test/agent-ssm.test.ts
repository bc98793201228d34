import { join } from 'node:path';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import t from 'tap';
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

t.test(
  'API_TOKEN_PARAMETER: the SecureString is read once from SSM (moto) and sent, never logged',
  async (t) => {
    const token = 'ssm-held-token-31415926';
    await putToken('/random-number/api-token', token);
    const service = await startService(t, { API_TOKEN: token });
    const output = join(t.testdir(), 'n.txt');
    const agent = startAgent(t, {
      ...moto.env,
      SERVICE_URL: service.url,
      SCHEDULE: '*/1 * * * * *',
      OUTPUT_FILE: output,
      API_TOKEN_PARAMETER: '/random-number/api-token',
      LOG_LEVEL: 'trace',
    });
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
    const token = 'role-read-token-1618';
    await putToken('/random-number/role-token', token);
    const service = await startService(t, { API_TOKEN: token });
    const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_EC2_METADATA_DISABLED, ...noKeys } = moto.env;
    const agent = startAgent(t, {
      ...noKeys,
      // Where an instance finds 169.254.169.254; moto answers the IMDSv2 token and role credentials.
      AWS_EC2_METADATA_SERVICE_ENDPOINT: moto.endpoint,
      SERVICE_URL: service.url,
      SCHEDULE: '*/1 * * * * *',
      OUTPUT_FILE: join(t.testdir(), 'n.txt'),
      API_TOKEN_PARAMETER: '/random-number/role-token',
    });
    t.match(
      await agent.waitForPoll(),
      { outcome: 'ok' },
      'the token read with role credentials was accepted',
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
