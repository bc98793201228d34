import { ConfigError } from '../../lib/errors.ts';
import { type agentSettings, DEFAULT_NAME } from './args.ts';
import { requireBoundary } from './boundary.ts';
import { describeCaCert } from './ca-cert.ts';
import { buildDelivery, readAgentFiles } from './delivery.ts';
import { ensureInstanceProfile, findProfile, findRole, recordedTokenParameter, roleName } from './iam.ts';
import {
  type FoundInstance,
  findInstances,
  launchInstances,
  resolveAmi,
  startStopped,
  waitRunning,
} from './instances.ts';
import type { Session } from './report.ts';
import { ensureSecurityGroup, findSecurityGroup, resolveVpc } from './security-group.ts';
import { runCommand, waitForRegistration } from './ssm-command.ts';
import { customerKeyOf, parameterArn, parameterExists, putToken, reusableTokenParameter } from './token.ts';
import { MAX_WAIT_SECONDS } from './wait.ts';

/** The agent's settings (args.ts) and where and how to run it. */
type ProvisionOptions = Awaited<ReturnType<typeof agentSettings>> & {
  name: string;
  /** --region as given: repeated in the commands printed at the end. */
  region?: string;
  instanceType: string;
  count: number;
  subnetId?: string;
  tokenParameter?: string;
  /** Written to `tokenParameter`; never printed. */
  token?: string;
  /** Print what would be created or reused, from read-only calls, and change nothing. */
  dryRun: boolean;
  /** The first delay of every wait (--poll-interval-ms). */
  delaySeconds: number;
};

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const isStopped = (i: FoundInstance) => i.state === 'stopped' || i.state === 'stopping';

/**
 * The provisioning scenario: each step is a small AWS function; this composes them in order and tells
 * the reporter about each. Idempotent: every resource is found by name/tag first and reused.
 */
export async function provision(session: Session, options: ProvisionOptions): Promise<void> {
  const { name, token, delaySeconds } = options;
  const { ec2, iam, ssm, identity } = session;
  const { step, line } = session.report;
  const { region, account, partition } = identity;
  const created: string[] = [];
  const reused: string[] = [];
  const note = (isNew: boolean, what: string) => (isNew ? created : reused).push(what);
  const wait = (maxWaitSeconds: number) => ({ delaySeconds, maxWaitSeconds });

  const boundaryArn = await step(
    'permissions boundary',
    () => requireBoundary(iam, { partition, account }),
    String,
  );
  const tokenParameter = await resolveTokenParameter(session, options);
  const delivery = await step(
    'agent bundle',
    async () => buildDelivery({ ...(await readAgentFiles(options)), ...options, tokenParameter, region }),
    (d) =>
      `${d.bundleBytes} bytes, sha256 ${d.sha256.slice(0, 12)}…, ${d.encodedChars} chars gzip+base64 in ${plural(d.commands.length, 'command')}`,
  );
  line(`agent CA: ${describeCaCert(options.caCert)}`);
  const ami = await step(
    'AMI',
    () => resolveAmi(ssm, ec2, options.instanceType),
    (a) => `${a.imageId} (Amazon Linux 2023 ${a.architecture}, root ${a.rootDeviceName})`,
  );
  const vpcId = await step('VPC', () => resolveVpc(ec2, options.subnetId), String);
  if (tokenParameter && !token && !options.dryRun && !(await parameterExists(ssm, tokenParameter))) {
    throw new ConfigError(
      `--api-token-parameter ${tokenParameter} does not exist: pass --api-token (or set API_TOKEN) to create it`,
    );
  }
  const existing = await findInstances(ec2, name);

  if (options.dryRun) {
    const keyId = tokenParameter && (await customerKeyOf(ssm, tokenParameter));
    const verb = (exists: boolean) => (exists ? 'reuse' : 'create').padEnd(6);
    const rolePolicies = [
      'AmazonSSMManagedInstanceCore',
      'permissions boundary',
      tokenParameter ? 'ssm:GetParameter on the token' : 'no parameter',
      ...(keyId ? [`kms:Decrypt on ${keyId} through SSM`] : []),
    ];
    const lines = [
      `${verb((await findRole(iam, name)).role !== undefined)} IAM role ${roleName(name)} (${rolePolicies.join(', ')})`,
      `${verb((await findProfile(iam, name)) !== undefined)} instance profile ${roleName(name)}`,
      `${verb((await findSecurityGroup(ec2, name, vpcId)) !== undefined)} security group ${name} in ${vpcId} (no inbound rules)`,
    ];
    if (tokenParameter) {
      const exists = await parameterExists(ssm, tokenParameter);
      lines.push(
        `${(token ? (exists ? 'update' : 'create') : 'use').padEnd(6)} SecureString ${tokenParameter}`,
      );
    }
    const start = (i: FoundInstance) => (isStopped(i) ? ', would be started' : '');
    lines.push(...existing.map((i) => `${verb(true)} instance ${i.instanceId} (${i.state}${start(i)})`));
    if (existing.length < options.count) {
      lines.push(
        `create ${plural(options.count - existing.length, 'instance')} ${options.instanceType} from ${ami.imageId}, IMDSv2 required, encrypted gp3 root volume, tags Name=${name} Project=${name}`,
      );
    }
    lines.push(
      `send   ${plural(delivery.commands.length, 'Run Command')} (AWS-RunShellScript) to tag:Project=${name} and tag:CreatedBy: install the agent polling ${options.serviceUrl} on '${options.schedule}'`,
    );
    line(`dry run: nothing was changed. The plan:\n${lines.map((line) => `  ${line}`).join('\n')}`);
    return;
  }

  if (tokenParameter && token) {
    const { created: isNew } = await step(
      'API token',
      () => putToken(ssm, { name, parameterName: tokenParameter, token }),
      (r) => `SecureString ${tokenParameter} ${r.created ? 'created' : 'updated'}`,
    );
    note(isNew, `SecureString ${tokenParameter}`);
  }
  // After putToken: an overwrite may change the parameter's key.
  const readable = tokenParameter
    ? {
        parameterName: tokenParameter,
        arn: parameterArn(partition, region, account, tokenParameter),
        keyId: await customerKeyOf(ssm, tokenParameter),
      }
    : undefined;
  const profile = await step(
    'IAM role and instance profile',
    () => ensureInstanceProfile(iam, { name, partition, region, account, boundaryArn, token: readable }),
    (p) =>
      `${p.roleName} ${p.roleCreated ? 'created' : 'reused'}, profile ${p.profileCreated ? 'created' : 'reused'}`,
  );
  note(profile.roleCreated, `IAM role ${profile.roleName}`);
  note(profile.profileCreated, `instance profile ${profile.profileName}`);
  const group = await step(
    'security group',
    () => ensureSecurityGroup(ec2, { name, vpcId }),
    (g) => `${g.groupId} ${g.created ? 'created' : 'reused'} (no inbound rules)`,
  );
  note(group.created, `security group ${group.groupId}`);

  for (const i of existing) note(false, `instance ${i.instanceId}`);
  if (existing.some(isStopped)) {
    await step(
      'start stopped instances',
      () => startStopped(ec2, existing, wait(MAX_WAIT_SECONDS.running)),
      (ids) => `started ${ids.join(', ')} (found stopped or stopping; reused, not replaced)`,
    );
  }
  const missing = Math.max(0, options.count - existing.length);
  const launched = missing
    ? await step(
        'launch',
        () =>
          launchInstances(ec2, {
            ...options,
            count: missing,
            ami,
            instanceProfileName: profile.profileName,
            securityGroupId: group.groupId,
            profileRetry: wait(MAX_WAIT_SECONDS.profile),
          }),
        (ids) => ids.join(', '),
      )
    : [];
  for (const id of launched) note(true, `instance ${id}`);
  const instanceIds = [...existing.map((i) => i.instanceId), ...launched];
  if (!missing) line(`reusing ${plural(existing.length, 'instance')}: ${instanceIds.join(', ')}`);
  await step(
    'running',
    () => waitRunning(ec2, instanceIds, wait(MAX_WAIT_SECONDS.running)),
    () => instanceIds.join(', '),
  );
  await step(
    'SSM registration',
    () => waitForRegistration(ssm, instanceIds, wait(MAX_WAIT_SECONDS.registered)),
    (how) => `all registered (${how})`,
  );

  let installed: { instanceId: string; stdout: string }[] = [];
  for (const command of delivery.commands) {
    ({ results: installed } = await step(
      command.comment,
      () => runCommand(ssm, { command, target: { tagProject: name }, instanceIds, delaySeconds }),
      (r) => `command ${r.commandId} succeeded on ${plural(r.results.length, 'instance')}`,
    ));
  }
  for (const { instanceId, stdout } of installed) {
    const tail = stdout.trim().split('\n').filter(Boolean).slice(-8);
    line(`  ${instanceId}: ${tail.length ? tail.map((text) => `\n    ${text}`).join('') : '(no output)'}`);
  }

  // The flags to repeat in the commands printed below: only what differs from the defaults.
  const flags = [
    ...(name === DEFAULT_NAME ? [] : [`--name ${name}`]),
    ...(options.region ? [`--region ${region}`] : []),
  ].join(' ');
  const args = flags ? ` -- ${flags}` : '';
  line(`\ndone: the agent is installed on ${instanceIds.join(', ')} in ${region}`);
  line(`  created: ${created.join(', ') || 'nothing (everything existed)'}`);
  line(`  reused:  ${reused.join(', ') || 'nothing'}`);
  line(`  results:  npm run ec2-results${args}   (numbers appear after the first schedule tick)`);
  line(`  teardown: npm run teardown-ec2${args}`);
}

/**
 * The token parameter this run installs the agent with. Given (a flag or API_TOKEN) wins; without one,
 * a re-run keeps what the earlier run set up (see reusableTokenParameter) and says so, because
 * installing without it would make every poll of a protected service fail with 401.
 */
async function resolveTokenParameter(session: Session, options: ProvisionOptions) {
  const { line } = session.report;
  if (options.tokenParameter || options.token) return options.tokenParameter;
  const recorded = await recordedTokenParameter(session.iam, options.name);
  const found = await reusableTokenParameter(session.ssm, { name: options.name, recorded });
  if (found.parameterName) {
    const from =
      found.source === 'recorded'
        ? 'the one the agent role may read since an earlier run'
        : 'created by an earlier run';
    line(
      `API token: reusing SecureString ${found.parameterName} (${from}); pass --api-token-parameter or --api-token to change it`,
    );
  } else if (recorded) {
    line(
      `API token: none; the role keeps its permission to read ${recorded} from an earlier run, but that parameter is gone`,
    );
  }
  if (found.note) line(`API token: ${found.note}`);
  return found.parameterName;
}
