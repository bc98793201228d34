import type { Clients } from './clients.ts';
import { checkCredentials } from './credentials.ts';
import { deleteInstanceProfile, recordedTokenParameter } from './iam.ts';
import { findInstances, terminateInstances } from './instances.ts';
import type { Reporter } from './report.ts';
import { deleteSecurityGroups } from './security-group.ts';
import { defaultTokenParameter } from './tags.ts';
import { deleteTokenIfOurs } from './token.ts';
import { timing, type Waits, waiterTiming } from './waits.ts';

export interface TeardownOptions {
  name: string;
  /** Default: the one recorded on the agent role, else the default name. */
  tokenParameter?: string;
  waits: Waits;
}

/**
 * Removes what provision created, found by tag and name: instances (terminated and waited for, which
 * also deletes their volumes), then the security group they held, the instance profile and role, and the
 * token parameter only if provisioning created it. Anything already gone is skipped.
 */
export async function teardown(
  clients: Clients,
  options: TeardownOptions,
  report: Reporter,
): Promise<string[]> {
  const { name, waits } = options;
  const removed: string[] = [];
  await report.step(
    'credentials',
    () => checkCredentials(clients.sts),
    (id) => `${id.arn} in ${id.region}`,
  );
  // Read before the role goes: the parameter the last run installed the agent with.
  const tokenParameter =
    options.tokenParameter ??
    (await recordedTokenParameter(clients.iam, name)) ??
    defaultTokenParameter(name);
  const instances = await findInstances(clients.ec2, name);
  const ids = instances.map((i) => i.instanceId);
  await report.step(
    'instances',
    () => terminateInstances(clients.ec2, ids, waiterTiming(waits, waits.terminatedMaxSeconds)),
    () => (ids.length ? `terminated ${ids.join(', ')}` : 'none'),
  );
  removed.push(...ids.map((id) => `instance ${id} (and its root volume)`));
  const groups = await report.step(
    'security group',
    () => deleteSecurityGroups(clients.ec2, name, timing(waits, waits.securityGroupReleaseMaxMs)),
    (g) => (g.length ? g.join(', ') : 'none'),
  );
  removed.push(...groups);
  const iam = await report.step(
    'IAM role and instance profile',
    () => deleteInstanceProfile(clients.iam, name),
    (r) => [r.removed.length ? r.removed.join(', ') : 'none', r.kept].filter(Boolean).join('; '),
  );
  removed.push(...iam.removed);
  const token = await report.step(
    'API token parameter',
    () => deleteTokenIfOurs(clients.ssm, { name, parameterName: tokenParameter }),
    (outcome) =>
      outcome === 'deleted'
        ? `${tokenParameter} deleted`
        : outcome === 'kept'
          ? `${tokenParameter} kept (not created by provision-ec2)`
          : 'none',
  );
  if (token === 'deleted') removed.push(`SecureString ${tokenParameter}`);
  return removed;
}
