import type { Clients } from './clients.ts';
import { findProfile, findRole, roleName } from './iam.ts';
import { findInstances } from './instances.ts';
import { findSecurityGroup } from './security-group.ts';
import { parameterExists } from './token.ts';

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export interface PlanInput {
  name: string;
  serviceUrl: string;
  instanceType: string;
  count: number;
  schedule: string;
  tokenParameter?: string;
  token?: string;
  vpcId: string;
  imageId: string;
  commandCount: number;
  /** Whether the role gets the inline ssm:GetParameter policy. */
  tokenReadable: boolean;
  /** The token parameter's customer managed KMS key, if it has one. */
  keyId?: string;
}

/** What provisioning would create or reuse, from read-only calls: the --dry-run output. */
export async function plan(
  clients: Clients,
  input: PlanInput,
): Promise<{ lines: string[]; instanceIds: string[] }> {
  const { name } = input;
  const verb = (exists: boolean, otherwise = 'create') => (exists ? 'reuse ' : otherwise).padEnd(6);
  const role = roleName(name);
  const existing = await findInstances(clients.ec2, name);
  const lines = [
    `${verb((await findRole(clients.iam, name)).role !== undefined)} IAM role ${role} (AmazonSSMManagedInstanceCore, permissions boundary${input.tokenReadable ? ', ssm:GetParameter on the token' : ', no parameter'}${input.keyId ? `, kms:Decrypt on ${input.keyId} through SSM` : ''})`,
    `${verb((await findProfile(clients.iam, name)) !== undefined)} instance profile ${role}`,
    `${verb((await findSecurityGroup(clients.ec2, name, input.vpcId)) !== undefined)} security group ${name} in ${input.vpcId} (no inbound rules)`,
  ];
  if (input.tokenParameter) {
    const exists = await parameterExists(clients.ssm, input.tokenParameter);
    const action = input.token ? (exists ? 'update' : 'create') : 'use';
    lines.push(`${action.padEnd(6)} SecureString ${input.tokenParameter}`);
  }
  for (const i of existing) {
    const start = i.state === 'stopped' || i.state === 'stopping' ? ', would be started' : '';
    lines.push(`${verb(true)} instance ${i.instanceId} (${i.state}${start})`);
  }
  if (existing.length < input.count) {
    lines.push(
      `create ${plural(input.count - existing.length, 'instance')} ${input.instanceType} from ${input.imageId}, IMDSv2 required, encrypted gp3 root volume, tags Name=${name} Project=${name}`,
    );
  }
  lines.push(
    `send   ${plural(input.commandCount, 'Run Command')} (AWS-RunShellScript) to tag:Project=${name} and tag:CreatedBy: install the agent polling ${input.serviceUrl} on '${input.schedule}'`,
  );
  return { lines, instanceIds: existing.map((i) => i.instanceId) };
}
