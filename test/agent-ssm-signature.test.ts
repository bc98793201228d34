import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  IAMClient,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import t from 'tap';
import { getParameter } from '../ec2-agent/ssm-parameter.ts';
import { startMoto } from './helpers/moto.ts';

// moto with IAM enforcement: after the first 6 requests (the set-up below), every request must carry a
// Signature V4 that moto recomputes with the key's secret, and the key's policy must allow the action.
// This is what checks our signing against an independent implementation, not against itself.
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

const token = 'signed-read-token-2718';
await ssm.send(
  new PutParameterCommand({ Name: '/random-number/api-token', Value: token, Type: 'SecureString' }),
);
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
const agentKeys = { accessKeyId: key?.AccessKeyId ?? '', secretAccessKey: key?.SecretAccessKey ?? '' };
await iam.send(new CreateUserCommand({ UserName: 'nobody' }));
const other = (await iam.send(new CreateAccessKeyCommand({ UserName: 'nobody' }))).AccessKey;
const noPolicyKeys = { accessKeyId: other?.AccessKeyId ?? '', secretAccessKey: other?.SecretAccessKey ?? '' };
/** The agent's signed GetParameter of the token, with the keys `credentials` gives. */
const readWith = (credentials: () => Promise<typeof admin>) =>
  getParameter('/random-number/api-token', { region, endpoint: moto.endpoint, credentials });

t.test('a correctly signed GetParameter with a permitted key gets the decrypted value', async (t) => {
  const value = await readWith(async () => agentKeys);
  t.equal(value, token, 'the SecureString, decrypted');
});

t.test('a wrong secret: moto rejects the signature, by its error code', async (t) => {
  await t.rejects(
    readWith(async () => ({ ...agentKeys, secretAccessKey: `${agentKeys.secretAccessKey}x` })),
    { name: /SignatureDoesNotMatch|InvalidSignatureException/ },
    'the signature is checked, and a bad one is refused',
  );
});

t.test('a key whose policy does not allow GetParameter: AccessDeniedException', async (t) => {
  await t.rejects(
    readWith(async () => noPolicyKeys),
    // Real SSM says AccessDeniedException; moto's IAM layer answers in the query protocol's AccessDenied.
    { name: /^AccessDenied(Exception)?$/, message: /GetParameter/ },
    'refused by its error code, with what was denied',
  );
});

t.test('a key IAM does not know: refused by its error code', async (t) => {
  await t.rejects(
    readWith(async () => admin),
    { name: /InvalidClientTokenId|UnrecognizedClientException/ },
    'an unknown key is refused by name',
  );
});
