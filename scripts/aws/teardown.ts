import { deleteInstanceProfile, recordedTokenParameter } from './iam.ts';
import { findInstances, terminateInstances } from './instances.ts';
import type { Session } from './report.ts';
import { deleteSecurityGroups } from './security-group.ts';
import { defaultTokenParameter } from './tags.ts';
import { deleteTokenIfOurs } from './token.ts';
import { MAX_WAIT_SECONDS } from './wait.ts';

/**
 * Removes what provision created, found by tag and name: instances (terminated and waited for, which
 * also deletes their volumes), then the security group they held, the instance profile and role, and the
 * token parameter only if provisioning created it. Anything already gone is skipped. Prints what went.
 */
export async function teardown(
  { ec2, iam, ssm, report }: Session,
  options: { name: string; tokenParameter?: string; delaySeconds: number },
): Promise<void> {
  const { name, delaySeconds } = options;
  // Read before the role goes: the parameter the last run installed the agent with.
  const parameter =
    options.tokenParameter ?? (await recordedTokenParameter(iam, name)) ?? defaultTokenParameter(name);
  const ids = (await findInstances(ec2, name)).map((i) => i.instanceId);
  await report.step(
    'instances',
    () => terminateInstances(ec2, ids, { delaySeconds, maxWaitSeconds: MAX_WAIT_SECONDS.terminated }),
    () => (ids.length ? `terminated ${ids.join(', ')}` : 'none'),
  );
  const groups = await report.step(
    'security group',
    () => deleteSecurityGroups(ec2, name, { delaySeconds, maxWaitSeconds: MAX_WAIT_SECONDS.released }),
    (g) => g.join(', ') || 'none',
  );
  const role = await report.step(
    'IAM role and instance profile',
    () => deleteInstanceProfile(iam, name),
    (r) => [r.removed.join(', ') || 'none', r.kept].filter(Boolean).join('; '),
  );
  const token = await report.step(
    'API token parameter',
    () => deleteTokenIfOurs(ssm, { name, parameterName: parameter }),
    (outcome) =>
      outcome === 'absent'
        ? 'none'
        : `${parameter} ${outcome === 'kept' ? 'kept (not created by provision-ec2)' : outcome}`,
  );
  const removed = [
    ...ids.map((id) => `instance ${id} (and its root volume)`),
    ...groups,
    ...role.removed,
    ...(token === 'deleted' ? [`SecureString ${parameter}`] : []),
  ];
  report.line('');
  if (!removed.length) report.line(`nothing to remove: no resources of ${name} were found`);
  else report.line(`removed ${removed.length}:\n${removed.map((what) => `  ${what}`).join('\n')}`);
}
