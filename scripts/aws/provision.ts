import { ConfigError } from '../../lib/errors.ts';
import { installArgs, readAgentFiles } from './agent-files.ts';
import { resolveAmi } from './ami.ts';
import { requireBoundary } from './boundary.ts';
import { type CaCertChoice, describeCaCert } from './ca-cert.ts';
import type { Clients } from './clients.ts';
import { checkCredentials } from './credentials.ts';
import { buildDelivery } from './delivery.ts';
import { ensureInstanceProfile, recordedTokenParameter } from './iam.ts';
import { findInstances, launchInstances, startStopped, waitRunning } from './instances.ts';
import { plan, plural } from './plan.ts';
import type { Reporter } from './report.ts';
import { ensureSecurityGroup, resolveVpc } from './security-group.ts';
import { runCommand } from './ssm-command.ts';
import { waitForRegistration } from './ssm-registration.ts';
import { customerKeyOf, parameterArn, parameterExists, putToken, reusableTokenParameter } from './token.ts';
import { timing, type Waits, waiterTiming } from './waits.ts';

export interface ProvisionOptions {
  name: string;
  serviceUrl: string;
  instanceType: string;
  count: number;
  schedule: string;
  /** The agent's output file; install.sh's default (/root/randomNumber.txt) when not given. */
  outputFile?: string;
  subnetId?: string;
  tokenParameter?: string;
  /** Written to `tokenParameter`; never printed. */
  token?: string;
  /** --ca-cert: a CA the agent trusts besides the system's, `none` to remove it, undefined to keep. */
  caCert?: CaCertChoice;
  dryRun: boolean;
  bundlePath?: string;
  installScriptPath?: string;
  waits: Waits;
}

export interface ProvisionResult {
  region: string;
  instanceIds: string[];
  created: string[];
  reused: string[];
  dryRun: boolean;
}

/**
 * The provisioning scenario: each step is a small AWS function; this composes them in order and tells
 * the reporter about each. Idempotent: every resource is found by name/tag first and reused.
 */
export async function provision(
  clients: Clients,
  options: ProvisionOptions,
  report: Reporter,
): Promise<ProvisionResult> {
  const { name, waits } = options;
  const created: string[] = [];
  const reused: string[] = [];
  const note = (isNew: boolean, what: string) => (isNew ? created : reused).push(what);

  const identity = await report.step(
    'credentials',
    () => checkCredentials(clients.sts),
    (id) => `${id.arn} in ${id.region}`,
  );
  const { region, partition } = identity;
  const boundaryArn = await report.step(
    'permissions boundary',
    () => requireBoundary(clients.iam, { partition, account: identity.account }),
    (arn) => arn,
  );
  const tokenParameter = await resolveTokenParameter(clients, options, report);
  const files = await readAgentFiles({
    bundle: options.bundlePath,
    installScript: options.installScriptPath,
  });
  const delivery = await report.step(
    'agent bundle',
    async () =>
      buildDelivery({
        ...files,
        installArgs: installArgs({ ...options, tokenParameter, region }),
        caCert: options.caCert === 'none' ? 'none' : options.caCert?.pem,
      }),
    (d) =>
      `${d.bundleBytes} bytes, sha256 ${d.sha256.slice(0, 12)}…, ${d.encodedChars} chars gzip+base64 in ${plural(d.commands.length, 'command')}`,
  );
  report.line(`agent CA: ${describeCaCert(options.caCert)}`);
  const ami = await report.step(
    'AMI',
    () => resolveAmi(clients.ssm, clients.ec2, options.instanceType),
    (a) => `${a.imageId} (Amazon Linux 2023 ${a.architecture}, root ${a.rootDeviceName})`,
  );
  const vpcId = await report.step(
    'VPC',
    () => resolveVpc(clients.ec2, options.subnetId),
    (v) => v,
  );

  const tokenArn = tokenParameter
    ? parameterArn(partition, region, identity.account, tokenParameter)
    : undefined;
  if (tokenParameter && !options.token && !options.dryRun) {
    if (!(await parameterExists(clients.ssm, tokenParameter))) {
      throw new ConfigError(
        `--api-token-parameter ${tokenParameter} does not exist: pass --api-token (or set API_TOKEN) to create it`,
      );
    }
  }

  if (options.dryRun) {
    const keyId = tokenParameter ? await customerKeyOf(clients.ssm, tokenParameter) : undefined;
    const { lines, instanceIds } = await plan(clients, {
      ...options,
      tokenParameter,
      vpcId,
      imageId: ami.imageId,
      commandCount: delivery.commands.length,
      tokenReadable: tokenArn !== undefined,
      keyId,
    });
    report.line('dry run: nothing was changed. The plan:');
    for (const line of lines) report.line(`  ${line}`);
    return { region, instanceIds, created: [], reused: [], dryRun: true };
  }

  if (tokenParameter && options.token) {
    const parameterName = tokenParameter;
    const token = options.token;
    const result = await report.step(
      'API token',
      () => putToken(clients.ssm, { name, parameterName, token }),
      (r) => `SecureString ${parameterName} ${r.created ? 'created' : 'updated'}`,
    );
    note(result.created, `SecureString ${parameterName}`);
  }

  const token =
    tokenParameter && tokenArn
      ? {
          parameterName: tokenParameter,
          arn: tokenArn,
          keyId: await customerKeyOf(clients.ssm, tokenParameter),
        }
      : undefined;
  const profile = await report.step(
    'IAM role and instance profile',
    () =>
      ensureInstanceProfile(clients.iam, {
        name,
        partition,
        region,
        account: identity.account,
        boundaryArn,
        token,
      }),
    (p) =>
      `${p.roleName} ${p.roleCreated ? 'created' : 'reused'}, profile ${p.profileCreated ? 'created' : 'reused'}`,
  );
  note(profile.roleCreated, `IAM role ${profile.roleName}`);
  note(profile.profileCreated, `instance profile ${profile.profileName}`);

  const group = await report.step(
    'security group',
    () => ensureSecurityGroup(clients.ec2, { name, vpcId }),
    (g) => `${g.groupId} ${g.created ? 'created' : 'reused'} (no inbound rules)`,
  );
  note(group.created, `security group ${group.groupId}`);

  const existing = await findInstances(clients.ec2, name);
  for (const i of existing) reused.push(`instance ${i.instanceId}`);
  if (existing.some((i) => i.state === 'stopped' || i.state === 'stopping')) {
    await report.step(
      'start stopped instances',
      () => startStopped(clients.ec2, existing, waiterTiming(waits, waits.runningMaxSeconds)),
      (ids) => `started ${ids.join(', ')} (found stopped or stopping; reused, not replaced)`,
    );
  }
  const missing = Math.max(0, options.count - existing.length);
  const launched = missing
    ? await report.step(
        'launch',
        () =>
          launchInstances(clients.ec2, {
            name,
            count: missing,
            imageId: ami.imageId,
            rootDeviceName: ami.rootDeviceName,
            instanceType: options.instanceType,
            instanceProfileName: profile.profileName,
            securityGroupId: group.groupId,
            subnetId: options.subnetId,
            profileRetry: timing(waits, waits.profilePropagationMaxMs),
          }),
        (list) => list.map((i) => i.InstanceId).join(', '),
      )
    : [];
  for (const i of launched) created.push(`instance ${i.InstanceId}`);
  const instanceIds = [...existing.map((i) => i.instanceId), ...launched.map((i) => i.InstanceId as string)];
  if (!missing) report.line(`reusing ${plural(existing.length, 'instance')}: ${instanceIds.join(', ')}`);

  await report.step(
    'running',
    () => waitRunning(clients.ec2, instanceIds, waiterTiming(waits, waits.runningMaxSeconds)),
    () => instanceIds.join(', '),
  );
  await report.step(
    'SSM registration',
    () =>
      waitForRegistration(clients.ssm, {
        instanceIds,
        timing: timing(waits, waits.registrationMaxMs),
      }),
    (how) => `all registered (${how})`,
  );

  for (const command of delivery.commands) {
    const { results } = await report.step(
      command.comment,
      () =>
        runCommand(clients.ssm, {
          command,
          target: { tagProject: name },
          instanceIds,
          timing: timing(waits, waits.commandMaxMs),
        }),
      (r) => `command ${r.commandId} succeeded on ${plural(r.results.length, 'instance')}`,
    );
    if (command === delivery.commands.at(-1)) {
      for (const r of results) {
        const lines = r.stdout.trim().split('\n').filter(Boolean).slice(-8);
        report.line(`  ${r.instanceId}: ${lines.length ? '' : '(no output)'}`);
        for (const line of lines) report.line(`    ${line}`);
      }
    }
  }
  return { region, instanceIds, created, reused, dryRun: false };
}

/**
 * The token parameter this run installs the agent with. Given (a flag or API_TOKEN) wins; without one,
 * a re-run keeps what the earlier run set up (see reusableTokenParameter) and says so, because
 * installing without it would make every poll of a protected service fail with 401.
 */
async function resolveTokenParameter(
  clients: Clients,
  options: ProvisionOptions,
  report: Reporter,
): Promise<string | undefined> {
  if (options.tokenParameter || options.token) return options.tokenParameter;
  const recorded = await recordedTokenParameter(clients.iam, options.name);
  const found = await reusableTokenParameter(clients.ssm, { name: options.name, recorded });
  if (found.parameterName) {
    const from =
      found.source === 'recorded'
        ? 'the one the agent role may read since an earlier run'
        : 'created by an earlier run';
    report.line(
      `API token: reusing SecureString ${found.parameterName} (${from}); pass --api-token-parameter or --api-token to change it`,
    );
  } else if (recorded) {
    report.line(
      `API token: none; the role keeps its permission to read ${recorded} from an earlier run, but that parameter is gone`,
    );
  }
  if (found.note) report.line(`API token: ${found.note}`);
  return found.parameterName;
}
