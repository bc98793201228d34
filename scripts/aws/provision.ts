import { AGENT_DEFAULTS } from '../../lib/contract.ts';
import { ConfigError } from '../../lib/errors.ts';
import { type agentSettings, DEFAULT_NAME, refusePlainHttp } from './args.ts';
import { requireBoundary } from './boundary.ts';
import { describeCaCert } from './ca-cert.ts';
import { buildDelivery, readAgentFiles, shellQuote } from './delivery.ts';
import { ensureInstanceProfile, ownAgentIam, recordedTokenParameter, roleName } from './iam.ts';
import { findInstances, launchInstances, resolveAmi, startStopped, waitRunning } from './instances.ts';
import type { Session } from './report.ts';
import { createSecurityGroup, findSecurityGroup, resolveVpc } from './security-group.ts';
import { runCommand, waitForRegistration } from './ssm-command.ts';
import { customerKeyOf, parameterExists, putToken, reusableTokenParameter } from './token.ts';
import { MAX_WAIT_SECONDS } from './wait.ts';

/** The agent's settings (args.ts) and where and how to run it. */
type ProvisionOptions = Awaited<ReturnType<typeof agentSettings>> & {
  name: string;
  /** --region and --profile as given: repeated in the commands printed at the end. */
  region?: string;
  profile?: string;
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

/**
 * The provisioning scenario: first the reads (a dry run makes them too), then the steps that change
 * something, one list (report.ts Step) that a run runs and a dry run prints. Idempotent: every resource
 * is found by name/tag first and reused.
 */
export async function provision(session: Session, options: ProvisionOptions): Promise<void> {
  const { name, token, delaySeconds } = options;
  const { ec2, iam, ssm, identity } = session;
  const { step, line } = session.report;
  const { region } = identity;
  const created: string[] = [];
  const reused: string[] = [];
  const note = (isNew: boolean, what: string) => (isNew ? created : reused).push(what);
  const wait = (maxWaitSeconds: number) => ({ delaySeconds, maxWaitSeconds });
  const verb = (exists: unknown) => (exists ? 'reuse' : 'create');

  const boundaryArn = await step('permissions boundary', () => requireBoundary(iam, identity), String);
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
  // The flags to repeat in the commands printed (in notes and at the end), so that they reach the same
  // account, region, instances and output file: those given, unless they are the defaults.
  const flags = [
    ...(name === DEFAULT_NAME ? [] : [`--name ${name}`]),
    ...(options.region ? [`--region ${region}`] : []),
    ...(options.profile ? [`--profile ${shellQuote(options.profile)}`] : []),
  ].join(' ');
  const args = (text: string) => (text.trim() ? ` -- ${text.trim()}` : '');
  const teardown = `npm run teardown-ec2${args(flags)}`;
  // A re-run goes where the instances are: a security group is per VPC, an instance never changes VPC.
  const existing = await findInstances(ec2, name);
  const subnetId = options.subnetId ?? existing[0]?.SubnetId;
  const vpcId = await step('VPC', () => resolveVpc(ec2, subnetId), String);
  const apart = existing.find((i) => i.VpcId !== vpcId);
  if (apart)
    throw new ConfigError(
      `subnet ${subnetId} is in ${vpcId}, but ${name}'s instance ${apart.instanceId} is in ${apart.VpcId}: run ${teardown} first, or pass the first run's --subnet ${apart.SubnetId}`,
    );
  if (tokenParameter && !token && !(await parameterExists(ssm, tokenParameter))) {
    throw new ConfigError(
      `--api-token-parameter ${tokenParameter} does not exist: pass --api-token (or set API_TOKEN) to create it`,
    );
  }
  // Names taken by someone else's role or security group stop the run here, before the first change.
  const agentIam = await ownAgentIam(iam, name, boundaryArn);
  const group = await findSecurityGroup(ec2, name, vpcId);
  const missing = Math.max(0, options.count - existing.length);
  const stopped = existing.filter((i) => i.state === 'stopped' || i.state === 'stopping');
  const targets = existing.map((i) => i.instanceId).concat(missing ? plural(missing, 'new instance') : []);
  // What the steps make, for the steps after them.
  let groupId = '';
  let launched: string[] = [];
  let installed: { instanceId: string; stdout: string }[] = [];
  const ids = () => [...existing.map((i) => i.instanceId), ...launched];
  const target = { tagProject: name };
  const otherType = existing.filter((i) => i.InstanceType !== options.instanceType);
  for (const text of [
    existing.length > options.count &&
      `${plural(existing.length, 'instance')} exist, more than --count ${options.count}: none is removed; remove some with aws ec2 terminate-instances --instance-ids ..., or all with ${teardown}`,
    otherType.length &&
      `${otherType.map((i) => `${i.instanceId} is ${i.InstanceType}`).join(', ')}, not ${options.instanceType} (--instance-type): an instance is not changed in place; to change it, run ${teardown}, then provision-ec2 again`,
  ])
    if (text) line(`note: ${text}`);

  await session.report.steps(options.dryRun, [
    tokenParameter &&
      token && {
        name: 'API token',
        plan: async () =>
          `${(await parameterExists(ssm, tokenParameter)) ? 'update' : 'create'} SecureString ${tokenParameter}`,
        run: async () => {
          const r = await putToken(ssm, { name, parameterName: tokenParameter, token });
          note(r.created, `SecureString ${tokenParameter}`);
          return `SecureString ${tokenParameter} ${r.created ? 'created' : 'updated'}`;
        },
      },
    {
      name: 'IAM role and instance profile',
      plan: async () => {
        const keyId = tokenParameter && (await customerKeyOf(ssm, tokenParameter));
        const reads = tokenParameter ? `ssm:GetParameter on ${tokenParameter}` : 'no parameter';
        const decrypt = keyId ? `, kms:Decrypt on ${keyId} through SSM` : '';
        const { role, profile } = agentIam;
        return `${verb(role)} IAM role ${roleName(name)} (AmazonSSMManagedInstanceCore, permissions boundary, ${reads}${decrypt}), ${verb(profile)} instance profile`;
      },
      run: async () => {
        // After putToken: an overwrite may change the parameter's key.
        const readable = tokenParameter
          ? { parameterName: tokenParameter, keyId: await customerKeyOf(ssm, tokenParameter) }
          : undefined;
        const p = await ensureInstanceProfile(iam, { ...identity, name, boundaryArn, token: readable });
        note(p.roleCreated, `IAM role ${p.roleName}`);
        note(p.profileCreated, `instance profile ${p.profileName}`);
        return `${p.roleName} ${p.roleCreated ? 'created' : 'reused'}, profile ${p.profileCreated ? 'created' : 'reused'}`;
      },
    },
    {
      name: 'security group',
      plan: async () => `${verb(group)} ${name} in ${vpcId} (no inbound rules)`,
      run: async () => {
        groupId = group ?? (await createSecurityGroup(ec2, { name, vpcId }));
        note(!group, `security group ${groupId}`);
        return `${groupId} ${group ? 'reused' : 'created'} (no inbound rules)`;
      },
    },
    stopped.length > 0 && {
      name: 'start stopped instances',
      plan: () => `start ${stopped.map((i) => `${i.instanceId} (${i.state})`).join(', ')}`,
      run: async () => {
        const started = await startStopped(ec2, existing, wait(MAX_WAIT_SECONDS.running));
        return `started ${started.join(', ')} (found stopped or stopping; reused, not replaced)`;
      },
    },
    missing > 0 && {
      name: 'launch',
      plan: () =>
        `create ${plural(missing, 'instance')} ${options.instanceType} from ${ami.imageId}, IMDSv2 required, encrypted gp3 root volume, tags Name=${name} Project=${name}`,
      run: async () => {
        launched = await launchInstances(ec2, {
          ...options,
          count: missing,
          subnetId,
          ami,
          instanceProfileName: roleName(name),
          securityGroupId: groupId,
          profileRetry: wait(MAX_WAIT_SECONDS.profile),
        });
        return launched.join(', ');
      },
    },
    {
      name: 'running',
      plan: () => `wait for ${targets.join(', ')}`,
      run: () => waitRunning(ec2, ids(), wait(MAX_WAIT_SECONDS.running)).then(() => ids().join(', ')),
    },
    {
      name: 'SSM registration',
      plan: () => `wait for ${targets.join(', ')}`,
      run: async () =>
        `all registered (${await waitForRegistration(ssm, ids(), wait(MAX_WAIT_SECONDS.registered))})`,
    },
    ...delivery.commands.map((command, index) => ({
      name: command.comment,
      plan: () =>
        `send AWS-RunShellScript to tag:Project=${name} and tag:CreatedBy${index < delivery.commands.length - 1 ? '' : `: install the agent polling ${options.settings.SERVICE_URL} on '${options.settings.SCHEDULE}'`}`,
      run: async () => {
        const r = await runCommand(ssm, { command, target, instanceIds: ids(), delaySeconds });
        installed = r.results;
        return `command ${r.commandId} succeeded on ${plural(r.results.length, 'instance')}`;
      },
    })),
  ]);
  if (options.dryRun) return;

  for (const { instanceId, stdout } of installed) {
    const tail = stdout.trim().split('\n').filter(Boolean).slice(-8);
    line(`  ${instanceId}: ${tail.length ? tail.map((text) => `\n    ${text}`).join('') : '(no output)'}`);
  }
  for (const i of existing) note(false, `instance ${i.instanceId}`);
  for (const id of launched) note(true, `instance ${id}`);

  const file = options.settings.OUTPUT_FILE;
  const results = args(file === AGENT_DEFAULTS.outputFile ? flags : `${flags} --output-file ${file}`);
  line(`\ndone: the agent is installed on ${ids().join(', ')} in ${region}`);
  line(`  created: ${created.join(', ') || 'nothing (everything existed)'}`);
  line(`  reused:  ${reused.join(', ') || 'nothing'}`);
  line(`  results:  npm run ec2-results${results}   (numbers appear after the first schedule tick)`);
  line(`  teardown: ${teardown}`);
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
    refusePlainHttp(
      options.settings.SERVICE_URL,
      options.allowPlainHttp,
      ` (kept from an earlier run: ${found.parameterName})`,
    );
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
