import {
  AttachUserPolicyCommand,
  CreateAccessKeyCommand,
  CreatePolicyCommand,
  CreateUserCommand,
  type IAMClient,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import { OPERATOR_POLICY } from './iam-eval.ts';

/**
 * docs/iam-policy.json as moto's IAM enforcement can evaluate it: the same Effect and Action, Resource
 * "*" and no Condition (moto checks few resource ARNs and no condition keys: see aws-iam-enforced.test.ts),
 * less the actions in `without`.
 */
export function motoOperatorPolicy(without: string[] = []) {
  return {
    Version: '2012-10-17',
    Statement: OPERATOR_POLICY.Statement.map(({ Sid, Action }) => ({
      Sid,
      Effect: 'Allow',
      Action: [Action].flat().filter((action) => !without.includes(action)),
      Resource: '*',
    })).filter((s) => s.Action.length > 0),
  };
}

/** An IAM user, `attach` giving it its policies, and its access key as the CLIs' environment takes it. */
async function userWithKeys(iam: IAMClient, name: string, attach: (user: string) => Promise<unknown>) {
  await iam.send(new CreateUserCommand({ UserName: name }));
  await attach(name);
  const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: name }));
  return {
    AWS_ACCESS_KEY_ID: AccessKey?.AccessKeyId as string,
    AWS_SECRET_ACCESS_KEY: AccessKey?.SecretAccessKey as string,
  };
}

/** A user holding `policy` inline. */
export const userWithPolicy = (iam: IAMClient, name: string, policy: unknown) =>
  userWithKeys(iam, name, (user) =>
    iam.send(
      new PutUserPolicyCommand({ UserName: user, PolicyName: name, PolicyDocument: JSON.stringify(policy) }),
    ),
  );

/**
 * The two users the enforcement tests run as, made while moto still takes any key: an administrator
 * (every action: to look at what exists) and the operator, holding `motoOperatorPolicy()` as the
 * managed policy random-number-operator attached to it, as an administrator does with the real one.
 */
export async function adminAndOperator(iam: IAMClient) {
  const admin = await userWithPolicy(iam, 'admin', {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
  });
  const { Policy } = await iam.send(
    new CreatePolicyCommand({
      PolicyName: 'random-number-operator',
      PolicyDocument: JSON.stringify(motoOperatorPolicy()),
    }),
  );
  const operator = await userWithKeys(iam, 'operator', (user) =>
    iam.send(new AttachUserPolicyCommand({ UserName: user, PolicyArn: Policy?.Arn })),
  );
  return { admin, operator };
}

/**
 * Turns moto's IAM enforcement on for every request from now on (INITIAL_NO_AUTH_ACTION_COUNT=0): each
 * must be signed by a known user's key and is checked against that user's policies.
 */
export async function enforceIam(endpoint: string): Promise<number> {
  const response = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', body: '0' });
  await response.arrayBuffer();
  return response.status;
}
