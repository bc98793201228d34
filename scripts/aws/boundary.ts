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
import boundaryDocument from '../../docs/iam-boundary.json' with { type: 'json' };
import { ConfigError } from '../../lib/errors.ts';
import { unlessAbsent } from './errors.ts';
import { IAM_PATH, projectTags } from './tags.ts';

/**
 * The permissions boundary every agent role is created with. An administrator makes it once per account
 * (`npm run iam-bootstrap`); the operator policy lets its holder create roles only with it and change a
 * role's policies only while it is there. Whatever the operator attaches or writes, an agent role can then
 * do no more than the document allows (docs/iam.md): Run Command, the one token parameter its
 * TokenParameter tag names, and nothing at all away from its instances.
 */
export const BOUNDARY_NAME = 'random-number-agent-boundary';

export function boundaryArn(partition: string, account: string): string {
  return `arn:${partition}:iam::${account}:policy${IAM_PATH}${BOUNDARY_NAME}`;
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
  // docs/iam-boundary.json, the document's only copy: what an administrator reviews is what is applied.
  const PolicyDocument = JSON.stringify(boundaryDocument);
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
