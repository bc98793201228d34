import { deleteInstanceProfile, findAgentIam, recordedTokenParameter, roleName } from './iam.ts';
import { findInstances, terminateInstances } from './instances.ts';
import type { Session, Step } from './report.ts';
import { deleteSecurityGroups, findTaggedGroups } from './security-group.ts';
import { defaultTokenParameter } from './tags.ts';
import { deleteTokenIfOurs, tokenOwner } from './token.ts';
import { MAX_WAIT_SECONDS } from './wait.ts';

/**
 * Removes what provision created, found first by tag and name with read calls alone (a dry run names it
 * and stops there): instances (terminated and waited for, which also deletes their volumes), then the
 * security group they held, the instance profile and role, and the token parameter only if provisioning
 * created it. Anything already gone is skipped. Prints what went.
 */
export async function teardown(
  { ec2, iam, ssm, report }: Session,
  options: { name: string; tokenParameter?: string; delaySeconds: number; dryRun: boolean },
): Promise<void> {
  const { name, delaySeconds } = options;
  const wait = (maxWaitSeconds: number) => ({ delaySeconds, maxWaitSeconds });
  // Read before the role goes: the parameter the last run installed the agent with.
  const parameter =
    options.tokenParameter ?? (await recordedTokenParameter(iam, name)) ?? defaultTokenParameter(name);
  const ids = (await findInstances(ec2, name)).map((i) => i.instanceId);
  const sgs = await findTaggedGroups(ec2, name);
  const agentIam = await findAgentIam(iam, name);
  const owner = await tokenOwner(ssm, name, parameter);
  if (agentIam.notOurs) report.line(`IAM role and instance profile: ${agentIam.notOurs}; both kept`);
  if (owner === 'foreign')
    report.line(`API token parameter: ${parameter} kept (not created by provision-ec2)`);

  // Each step's resources are named alike in its plan, its ✓ line and the summary.
  const removed: string[] = [];
  const step = (label: string, found: (string | undefined)[], remove: () => Promise<unknown>): Step => {
    const what = found.filter((item) => item !== undefined);
    removed.push(...what);
    const list = what.join(', ') || 'nothing';
    return { name: label, plan: () => `remove ${list}`, run: () => remove().then(() => list) };
  };
  const role = roleName(name);
  const instances = ids.map((id) => `instance ${id} (and its root volume)`);
  const sgNames = sgs.map((g) => `security group ${g.GroupName} (${g.GroupId})`);
  const iamNames = [agentIam.profile && `instance profile ${role}`, agentIam.role && `role ${role}`];
  const token = owner === 'ours' ? [`SecureString ${parameter}`] : [];
  await report.steps(options.dryRun, [
    step('instances', instances, () => terminateInstances(ec2, ids, wait(MAX_WAIT_SECONDS.terminated))),
    step('security group', sgNames, () => deleteSecurityGroups(ec2, sgs, wait(MAX_WAIT_SECONDS.released))),
    step('IAM role and instance profile', iamNames, () => deleteInstanceProfile(iam, agentIam)),
    step('API token parameter', token, () => deleteTokenIfOurs(ssm, { name, parameterName: parameter })),
  ]);
  if (options.dryRun) return;
  report.line('');
  if (!removed.length) report.line(`nothing to remove: no resources of ${name} were found`);
  else report.line(`removed ${removed.length}:\n${removed.map((what) => `  ${what}`).join('\n')}`);
}
