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
  GetRolePolicyCommand,
  type IAMClient,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
  RemoveRoleFromInstanceProfileCommand,
} from '@aws-sdk/client-iam';
import { AwsStateError, errorName } from './errors.ts';
import { projectTags } from './tags.ts';

/** The AWS managed policy the SSM agent needs, in the caller's partition (aws, aws-us-gov, aws-cn). */
export function ssmCorePolicyArn(partition = 'aws'): string {
  return `arn:${partition}:iam::aws:policy/AmazonSSMManagedInstanceCore`;
}
export const TOKEN_POLICY_NAME = 'read-api-token';

const TRUST_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});

export function roleName(name: string): string {
  return `${name}-agent`;
}

export interface InstanceProfileResult {
  roleName: string;
  profileName: string;
  profileArn: string;
  roleCreated: boolean;
  profileCreated: boolean;
}

async function ignoreNotFound<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (errorName(err) === 'NoSuchEntity' || errorName(err) === 'NoSuchEntityException') return undefined;
    throw err;
  }
}

export async function roleExists(iam: IAMClient, name: string): Promise<boolean> {
  return (await roleOwner(iam, name)) !== 'absent';
}

/** Whether `<name>-agent` exists and carries our Project tag: a same-named role of someone else is never touched. */
export async function roleOwner(iam: IAMClient, name: string): Promise<'absent' | 'ours' | 'foreign'> {
  const found = await ignoreNotFound(iam.send(new GetRoleCommand({ RoleName: roleName(name) })));
  if (!found) return 'absent';
  return found.Role?.Tags?.some((t) => t.Key === 'Project' && t.Value === name) ? 'ours' : 'foreign';
}

export async function instanceProfileExists(iam: IAMClient, name: string): Promise<boolean> {
  const found = await ignoreNotFound(
    iam.send(new GetInstanceProfileCommand({ InstanceProfileName: roleName(name) })),
  );
  return found !== undefined;
}

/**
 * The ARN(s) of the parameter(s) the role's token read policy from an earlier run allows, if the role is
 * ours and has one: a re-run without token flags keeps using that parameter.
 */
export async function tokenPolicyResources(iam: IAMClient, name: string): Promise<string[]> {
  if ((await roleOwner(iam, name)) !== 'ours') return [];
  const found = await ignoreNotFound(
    iam.send(new GetRolePolicyCommand({ RoleName: roleName(name), PolicyName: TOKEN_POLICY_NAME })),
  );
  if (!found?.PolicyDocument) return [];
  try {
    // IAM returns the document URL-encoded (RFC 3986).
    const document = JSON.parse(decodeURIComponent(found.PolicyDocument)) as {
      Statement?: { Resource?: string | string[] } | { Resource?: string | string[] }[];
    };
    const statements = [document.Statement ?? []].flat();
    return statements.flatMap((s) => [s.Resource ?? []].flat());
  } catch {
    return [];
  }
}

/**
 * Role `<name>-agent` (trusted by EC2, with AmazonSSMManagedInstanceCore so the SSM agent can register)
 * and the instance profile of the same name holding it. Creates what is missing, reuses what exists.
 * With a token parameter ARN, an inline policy allows reading that one parameter; without, a policy
 * left from an earlier run is kept (never removed implicitly).
 */
export async function ensureInstanceProfile(
  iam: IAMClient,
  options: { name: string; tokenParameterArn?: string; partition?: string },
): Promise<InstanceProfileResult> {
  const role = roleName(options.name);
  const corePolicyArn = ssmCorePolicyArn(options.partition);
  let roleCreated = false;
  const owner = await roleOwner(iam, options.name);
  if (owner === 'foreign') {
    throw new AwsStateError(
      `IAM role ${role} exists but is not tagged Project=${options.name}: it is not ours; choose another --name`,
    );
  }
  if (owner === 'absent') {
    await iam.send(
      new CreateRoleCommand({
        RoleName: role,
        AssumeRolePolicyDocument: TRUST_POLICY,
        Description: `random-number agent on EC2 (${options.name})`,
        Tags: projectTags(options.name),
      }),
    );
    roleCreated = true;
  }
  const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role }));
  if (!attached.AttachedPolicies?.some((p) => p.PolicyArn === corePolicyArn)) {
    await iam.send(new AttachRolePolicyCommand({ RoleName: role, PolicyArn: corePolicyArn }));
  }
  if (options.tokenParameterArn) {
    await iam.send(
      new PutRolePolicyCommand({
        RoleName: role,
        PolicyName: TOKEN_POLICY_NAME,
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'ssm:GetParameter', Resource: options.tokenParameterArn }],
        }),
      }),
    );
  }
  // Without a token parameter an existing read policy stays: dropping it would silently turn every poll
  // of a protected service into a 401. Teardown removes it with the role.

  let profile = await ignoreNotFound(iam.send(new GetInstanceProfileCommand({ InstanceProfileName: role })));
  let profileCreated = false;
  if (!profile) {
    await iam.send(
      new CreateInstanceProfileCommand({ InstanceProfileName: role, Tags: projectTags(options.name) }),
    );
    profileCreated = true;
    profile = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: role }));
  }
  if (!profile.InstanceProfile?.Roles?.some((r) => r.RoleName === role)) {
    await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: role, RoleName: role }));
  }
  return {
    roleName: role,
    profileName: role,
    profileArn: profile.InstanceProfile?.Arn ?? '',
    roleCreated,
    profileCreated,
  };
}

/**
 * Removes the instance profile and the role with its policies, if the role is ours (tagged
 * Project=<name>). Returns what it deleted, or what it kept and why; absent is fine.
 */
export async function deleteInstanceProfile(
  iam: IAMClient,
  name: string,
): Promise<{ removed: string[]; kept?: string }> {
  const role = roleName(name);
  const removed: string[] = [];
  const owner = await roleOwner(iam, name);
  if (owner === 'foreign') {
    return { removed, kept: `role ${role} and its profile kept: not tagged Project=${name}, not ours` };
  }
  const profile = await ignoreNotFound(
    iam.send(new GetInstanceProfileCommand({ InstanceProfileName: role })),
  );
  if (profile) {
    for (const r of profile.InstanceProfile?.Roles ?? []) {
      await iam.send(
        new RemoveRoleFromInstanceProfileCommand({ InstanceProfileName: role, RoleName: r.RoleName }),
      );
    }
    await iam.send(new DeleteInstanceProfileCommand({ InstanceProfileName: role }));
    removed.push(`instance profile ${role}`);
  }
  if (owner === 'ours') {
    const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role }));
    for (const p of attached.AttachedPolicies ?? []) {
      await iam.send(new DetachRolePolicyCommand({ RoleName: role, PolicyArn: p.PolicyArn }));
    }
    const inline = await iam.send(new ListRolePoliciesCommand({ RoleName: role }));
    for (const policyName of inline.PolicyNames ?? []) {
      await iam.send(new DeleteRolePolicyCommand({ RoleName: role, PolicyName: policyName }));
    }
    await iam.send(new DeleteRoleCommand({ RoleName: role }));
    removed.push(`role ${role}`);
  }
  return { removed };
}
