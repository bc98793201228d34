import {
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  DeletePolicyVersionCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  type IAMClient,
  ListPolicyVersionsCommand,
  NoSuchEntityException,
} from '@aws-sdk/client-iam';
import { ConfigError } from '../../lib/errors.ts';
import { unlessAbsent } from './errors.ts';
import { IAM_PATH, PARAMETER_PREFIX, projectTags, TOKEN_TAG } from './tags.ts';

/**
 * The permissions boundary every agent role is created with. An administrator makes it once per account
 * (`npm run iam-bootstrap`); the operator policy lets its holder create roles only with it and change a
 * role's policies only while it is there. Whatever the operator attaches or writes, an agent role can then
 * do no more than this: what AmazonSSMManagedInstanceCore grants for Run Command, minus reading
 * parameters, plus reading the one parameter the role's TokenParameter tag names, if it is under the
 * project's prefix, and decrypting it through SSM. A role without the tag may read no parameter.
 */
export const BOUNDARY_NAME = 'random-number-agent-boundary';

export function boundaryArn(partition: string, account: string): string {
  return `arn:${partition}:iam::${account}:policy${IAM_PATH}${BOUNDARY_NAME}`;
}

/** AmazonSSMManagedInstanceCore's actions except ssm:GetParameter(s), which it grants on every parameter. */
const SSM_CORE_ACTIONS = [
  'ssm:DescribeAssociation',
  'ssm:GetDeployablePatchSnapshotForInstance',
  'ssm:GetDocument',
  'ssm:DescribeDocument',
  'ssm:GetManifest',
  'ssm:ListAssociations',
  'ssm:ListInstanceAssociations',
  'ssm:PutInventory',
  'ssm:PutComplianceItems',
  'ssm:PutConfigurePackageResult',
  'ssm:UpdateAssociationStatus',
  'ssm:UpdateInstanceAssociationStatus',
  'ssm:UpdateInstanceInformation',
  'ssmmessages:CreateControlChannel',
  'ssmmessages:CreateDataChannel',
  'ssmmessages:OpenControlChannel',
  'ssmmessages:OpenDataChannel',
  'ec2messages:AcknowledgeMessage',
  'ec2messages:DeleteMessage',
  'ec2messages:FailMessage',
  'ec2messages:GetEndpoint',
  'ec2messages:GetMessages',
  'ec2messages:SendReply',
];

export function boundaryDocument(partition: string, account: string) {
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'RunCommandAgent', Effect: 'Allow', Action: SSM_CORE_ACTIONS, Resource: '*' },
      {
        Sid: 'ReadTheTaggedTokenParameter',
        Effect: 'Allow',
        Action: 'ssm:GetParameter',
        // A policy variable, not a template: IAM fills in the role's tag (no tag: no match).
        Resource: `arn:${partition}:ssm:*:${account}:parameter/\${aws:PrincipalTag/${TOKEN_TAG}}`,
      },
      {
        Sid: 'NoParameterOutsideTheProject',
        Effect: 'Deny',
        Action: 'ssm:GetParameter*',
        NotResource: `arn:${partition}:ssm:*:${account}:parameter${PARAMETER_PREFIX}*`,
      },
      {
        Sid: 'DecryptThroughSsmOnly',
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: `arn:${partition}:kms:*:${account}:key/*`,
        Condition: { StringLike: { 'kms:ViaService': ['ssm.*.amazonaws.com', 'ssm.*.amazonaws.com.cn'] } },
      },
    ],
  };
}

/** The boundary's ARN in the caller's account, and the policy if it exists. */
async function findBoundary(iam: IAMClient, options: { partition: string; account: string }) {
  const arn = boundaryArn(options.partition, options.account);
  const found = await unlessAbsent(iam.send(new GetPolicyCommand({ PolicyArn: arn })), NoSuchEntityException);
  return { arn, policy: found?.Policy };
}

/**
 * The administrator's step (npm run iam-bootstrap): creates the boundary policy, or brings an existing
 * one up to date with a new default version.
 */
export async function ensureBoundary(iam: IAMClient, options: { partition: string; account: string }) {
  const { arn, policy } = await findBoundary(iam, options);
  const PolicyDocument = JSON.stringify(boundaryDocument(options.partition, options.account));
  if (!policy) {
    await iam.send(
      new CreatePolicyCommand({
        PolicyName: BOUNDARY_NAME,
        Path: IAM_PATH,
        PolicyDocument,
        Description: 'Permissions boundary of the random-number agent roles (npm run iam-bootstrap)',
        Tags: projectTags('random-number'),
      }),
    );
    return { arn, outcome: 'created' };
  }
  const { PolicyVersion } = await iam.send(
    new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }),
  );
  // IAM returns policy documents URL-encoded (RFC 3986).
  const current = JSON.parse(decodeURIComponent(PolicyVersion?.Document ?? '{}'));
  if (JSON.stringify(current) === PolicyDocument) return { arn, outcome: 'found' };
  // IAM keeps at most five versions: the oldest non-default one goes.
  const { Versions = [] } = await iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }));
  const [oldest] = Versions.filter((v) => !v.IsDefaultVersion).sort(
    (a, b) => Number(a.CreateDate ?? 0) - Number(b.CreateDate ?? 0),
  );
  if (Versions.length >= 5 && oldest) {
    await iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: oldest.VersionId }));
  }
  await iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument, SetAsDefault: true }));
  return { arn, outcome: 'updated' };
}

/** The provisioner's check: the boundary must exist before a role can be created with it. */
export async function requireBoundary(iam: IAMClient, options: { partition: string; account: string }) {
  const { arn, policy } = await findBoundary(iam, options);
  if (policy) return arn;
  throw new ConfigError(
    `the agent roles' permissions boundary ${arn} does not exist: an administrator of the account runs \`npm run iam-bootstrap\` once (see docs/iam.md)`,
  );
}
