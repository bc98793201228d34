import { deleteInstanceProfile, findAgentIam, recordedTokenParameter, roleName } from './iam.ts';
import { findInstances, terminateInstances } from './instances.ts';
import type { Session, Step } from './report.ts';
import { deleteSecurityGroups, findTaggedGroups } from './security-group.ts';
import { defaultTokenParameter } from './tags.ts';
import { deleteTokensIfOurs, tokenOwners } from './token.ts';
import { MAX_WAIT_SECONDS } from './wait.ts';

/**
 * Removes what provision created, found first by tag and name with read calls alone (a dry run names it
 * and stops there): instances (terminated and waited for, which also deletes their volumes), then the
 * security group they held, the token parameters provisioning created, then the instance profile and
 * role. Anything already gone is skipped. Prints what went.
 */
export async function teardown(
  { ec2, iam, ssm, report }: Session,
  options: { name: string; tokenParameter?: string; delaySeconds: number; dryRun: boolean },
): Promise<void> {
  const { name, delaySeconds, tokenParameter } = options;
  const wait = (maxWaitSeconds: number) => ({ delaySeconds, maxWaitSeconds });
  // Every parameter a run may have made that the operator policy lets us name without listing them all
  // (the flag's, the one the role records, the default): a switch with --api-token-parameter leaves two.
  const candidates = [tokenParameter, await recordedTokenParameter(iam, name), defaultTokenParameter(name)];
  const ids = (await findInstances(ec2, name)).map((i) => i.instanceId);
  const sgs = await findTaggedGroups(ec2, name);
  const agentIam = await findAgentIam(iam, name);
  const tokens = await tokenOwners(ssm, name, candidates);
  if (agentIam.notOurs) report.line(`IAM role and instance profile: ${agentIam.notOurs}; both kept`);
  for (const parameter of tokens.foreign)
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
  const token = tokens.ours.map((parameter) => `SecureString ${parameter}`);
  await report.steps(options.dryRun, [
    step('instances', instances, () => terminateInstances(ec2, ids, wait(MAX_WAIT_SECONDS.terminated))),
    step('security group', sgNames, () => deleteSecurityGroups(ec2, sgs, wait(MAX_WAIT_SECONDS.released))),
    // Before the role, which records the parameter: if deleting it fails, a rerun still finds it there.
    step('API token parameter', token, () => deleteTokensIfOurs(ssm, name, tokens.ours)),
    step('IAM role and instance profile', iamNames, () => deleteInstanceProfile(iam, agentIam)),
  ]);
  if (options.dryRun) return;
  if (!removed.length) report.line(`\nnothing to remove: no resources of ${name} were found`);
  else report.line(`\nremoved ${removed.length}:\n${removed.map((what) => `  ${what}`).join('\n')}`);
}
