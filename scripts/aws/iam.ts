import {
  AddRoleToInstanceProfileCommand,
  AttachRolePolicyCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  type IAMClient,
  type InstanceProfile,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
  RemoveRoleFromInstanceProfileCommand,
  type Role,
  TagRoleCommand,
} from '@aws-sdk/client-iam';
import { AGENT_POLICY_NAME, type AgentPolicyInput, agentPolicyDocument } from './agent-policy.ts';
import { AwsStateError, unlessAbsent } from './errors.ts';
import { IAM_PATH, projectTags, TOKEN_TAG, tokenTagValue } from './tags.ts';
import { parameterArn } from './token.ts';

/** The AWS managed policy the SSM agent needs, in the caller's partition (aws, aws-us-gov, aws-cn). */
export function ssmCorePolicyArn(partition: string): string {
  return `arn:${partition}:iam::aws:policy/AmazonSSMManagedInstanceCore`;
}

const TRUST_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});

export const roleName = (name: string): string => `${name}-agent`;

/**
 * Role `<name>-agent` if it exists, and whether it is ours: tagged Project=<name> under the project's IAM
 * path (the only place the operator policy may change roles). A same-named role of someone else is never
 * touched.
 */
export async function findRole(iam: IAMClient, name: string) {
  const command = new GetRoleCommand({ RoleName: roleName(name) });
  const role = (await unlessAbsent(iam.send(command), NoSuchEntityException))?.Role;
  const ours = role?.Path === IAM_PATH && role.Tags?.some((t) => t.Key === 'Project' && t.Value === name);
  return { role, ours };
}

/**
 * Role and instance profile `<name>-agent`, each if it exists; if either is not one provision-ec2 made
 * (the role tagged Project=<name>, both under the project's IAM path), only `notOurs`, saying why: then
 * neither is touched.
 */
export async function findAgentIam(iam: IAMClient, name: string): Promise<AgentIam> {
  const { role, ours } = await findRole(iam, name);
  const command = new GetInstanceProfileCommand({ InstanceProfileName: roleName(name) });
  const profile = (await unlessAbsent(iam.send(command), NoSuchEntityException))?.InstanceProfile;
  const stranger =
    role && !ours
      ? `IAM role ${role.RoleName} exists (${role.Arn}) but is not tagged Project=${name} under path`
      : profile && profile.Path !== IAM_PATH
        ? `instance profile ${profile.InstanceProfileName} exists (${profile.Arn}) but not under path`
        : undefined;
  return stranger
    ? { notOurs: `${stranger} ${IAM_PATH}: it is not one provision-ec2 made` }
    : { role, profile };
}
type AgentIam = { role?: Role; profile?: InstanceProfile; notOurs?: string };

/**
 * findAgentIam for provisioning: someone else's role or profile stops it, and so does a role of ours
 * without the permissions boundary, whose policies the operator policy may not change.
 */
export async function ownAgentIam(iam: IAMClient, name: string, boundaryArn: string) {
  const found = await findAgentIam(iam, name);
  if (found.notOurs) throw new AwsStateError(`${found.notOurs}; choose another --name`);
  if (found.role && !found.role.PermissionsBoundary?.PermissionsBoundaryArn) {
    const role = roleName(name);
    throw new AwsStateError(
      `IAM role ${role} has no permissions boundary, so the operator policy may not change it: an administrator adds it (aws iam put-role-permissions-boundary --role-name ${role} --permissions-boundary ${boundaryArn}) or deletes the role; then run again`,
    );
  }
  return found;
}

/** The token parameter an earlier run recorded on the role (TOKEN_TAG), if the role is ours. */
export async function recordedTokenParameter(iam: IAMClient, name: string) {
  const { role, ours } = await findRole(iam, name);
  const value = ours ? role?.Tags?.find((t) => t.Key === TOKEN_TAG)?.Value : undefined;
  return value ? `/${value}` : undefined;
}

/**
 * Role `<name>-agent` under the project's IAM path, with the permissions boundary, trusted by EC2, with
 * AmazonSSMManagedInstanceCore so the SSM agent can register and the inline policy of agent-policy.ts;
 * and the instance profile of the same name holding it. Creates what is missing, reuses what exists.
 * With a token, the role is tagged with its parameter and may read exactly that one; without, a token
 * recorded by an earlier run is kept (never removed implicitly), and a role with none may read no
 * parameter at all.
 */
export async function ensureInstanceProfile(
  iam: IAMClient,
  // The caller's partition, region and account, for the role's policies (agent-policy.ts).
  options: Pick<AgentPolicyInput, 'partition' | 'region' | 'account'> & {
    name: string;
    /** The permissions boundary every agent role carries (npm run iam-bootstrap made it). */
    boundaryArn: string;
    /** The token parameter the agent reads, and its customer managed KMS key if it has one. */
    token?: { parameterName: string; keyId?: string | undefined };
  },
) {
  const { name, token, partition, region, account } = options;
  const role = roleName(name);
  const corePolicyArn = ssmCorePolicyArn(partition);
  const found = await ownAgentIam(iam, name, options.boundaryArn);
  const tokenTag = token ? [{ Key: TOKEN_TAG, Value: tokenTagValue(token.parameterName) }] : [];
  if (!found.role) {
    await iam.send(
      new CreateRoleCommand({
        RoleName: role,
        Path: IAM_PATH,
        AssumeRolePolicyDocument: TRUST_POLICY,
        PermissionsBoundary: options.boundaryArn,
        Description: `random-number agent on EC2 (${name})`,
        Tags: [...projectTags(name), ...tokenTag],
      }),
    );
  } else if (token) {
    await iam.send(new TagRoleCommand({ RoleName: role, Tags: tokenTag }));
  }
  const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role }));
  if (!attached.AttachedPolicies?.some((p) => p.PolicyArn === corePolicyArn)) {
    await iam.send(new AttachRolePolicyCommand({ RoleName: role, PolicyArn: corePolicyArn }));
  }
  // Without a token a recorded one stays: dropping it would silently turn every poll of a protected
  // service into a 401. Teardown removes it with the role.
  if (token || !found.role?.Tags?.some((t) => t.Key === TOKEN_TAG)) {
    const tokenArn = token && parameterArn(partition, region, account, token.parameterName);
    const document = agentPolicyDocument({ ...options, tokenArn, keyId: token?.keyId });
    const PolicyDocument = JSON.stringify(document);
    await iam.send(
      new PutRolePolicyCommand({ RoleName: role, PolicyName: AGENT_POLICY_NAME, PolicyDocument }),
    );
  }

  const create = { InstanceProfileName: role, Path: IAM_PATH, Tags: projectTags(name) };
  const profile = found.profile ?? (await iam.send(new CreateInstanceProfileCommand(create))).InstanceProfile;
  if (!profile?.Roles?.some((r) => r.RoleName === role)) {
    await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: role, RoleName: role }));
  }
  return { roleName: role, profileName: role, roleCreated: !found.role, profileCreated: !found.profile };
}

/** Removes what findAgentIam found: the profile (its roles out first), then the role (its policies first). */
export async function deleteInstanceProfile(iam: IAMClient, { profile, role }: AgentIam) {
  const InstanceProfileName = profile?.InstanceProfileName;
  for (const r of profile?.Roles ?? []) {
    await iam.send(new RemoveRoleFromInstanceProfileCommand({ InstanceProfileName, RoleName: r.RoleName }));
  }
  if (profile) await iam.send(new DeleteInstanceProfileCommand({ InstanceProfileName }));
  const RoleName = role?.RoleName;
  if (!RoleName) return;
  const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName }));
  for (const p of attached.AttachedPolicies ?? []) {
    await iam.send(new DetachRolePolicyCommand({ RoleName, PolicyArn: p.PolicyArn }));
  }
  const inline = await iam.send(new ListRolePoliciesCommand({ RoleName }));
  for (const PolicyName of inline.PolicyNames ?? []) {
    await iam.send(new DeleteRolePolicyCommand({ RoleName, PolicyName }));
  }
  await iam.send(new DeleteRoleCommand({ RoleName }));
}
