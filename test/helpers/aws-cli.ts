import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetParameterCommand, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ensureBoundary } from '../../scripts/aws/boundary.ts';
import { defaultTokenParameter } from '../../scripts/aws/tags.ts';
import { type CliName, cliBundle } from './cli-bundle.ts';
import { startMoto } from './moto.ts';
import { type Output, outputOf } from './process.ts';

export type Run = Output;

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * moto_server plus what the EC2 CLI tests need around it: SDK clients to inspect the emulator's state
 * and `cli()`, which runs one of the real CLIs as a process against it: scripts/<name>.ts pre-compiled
 * (helpers/cli-bundle.ts), or with `via: 'npm'` exactly as a user starts it (`npm run <name>`, tsx).
 * The account gets the agent roles' permissions boundary, as `npm run iam-bootstrap` makes it, unless
 * `bootstrap: false`.
 */
export async function startAwsCli(
  t: Teardown,
  options: { bootstrap?: boolean; motoEnv?: Record<string, string> } = {},
) {
  const moto = await startMoto(t, { env: options.motoEnv });
  const clientConfig = {
    region: 'us-east-1',
    endpoint: moto.endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  };
  const ec2 = new EC2Client(clientConfig);
  const iam = new IAMClient(clientConfig);
  const ssm = new SSMClient(clientConfig);
  if (options.bootstrap !== false) await ensureBoundary(iam, { partition: 'aws', account: '123456789012' });
  // An empty HOME: nothing from the developer's ~/.aws reaches the CLIs.
  const home = mkdtempSync(join(tmpdir(), 'aws-home-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));

  /** Runs a CLI with moto's environment plus `env` (where undefined removes a variable). */
  async function cli(
    script: CliName,
    args: string[],
    env: Record<string, string | undefined> = {},
    /** `npmFlags`: flags given to npm itself, before `--`, as by a user who forgot the `--`. */
    options: { via?: 'bundle' | 'npm'; npmFlags?: string[] } = {},
  ): Promise<Run> {
    const merged: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      HOME: home,
      NODE_NO_WARNINGS: '1',
      ...moto.env,
      ...env,
    };
    // The commands that wait take a short poll interval; the others have no such flag.
    const waits = script !== 'iam-bootstrap' && script !== 'agent-command';
    const all = waits ? [...args, '--poll-interval-ms', '20'] : args;
    const [command, argv] =
      options.via === 'npm'
        ? ['npm', ['run', '--silent', script, ...(options.npmFlags ?? []), '--', ...all]]
        : [process.execPath, [await cliBundle(script), ...all]];
    const child = spawn(command, argv, {
      env: Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 90_000,
      killSignal: 'SIGKILL',
    });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    return outputOf(child);
  }

  return { moto, ec2, iam, ssm, cli, ...inspect({ ec2, iam, ssm }) };
}

/**
 * What exists in the emulator, read with these clients: those of startAwsCli, or an administrator's
 * once moto enforces IAM.
 */
export function inspect({ ec2, iam, ssm }: { ec2: EC2Client; iam: IAMClient; ssm: SSMClient }) {
  async function liveInstances(name: string): Promise<Instance[]> {
    const out = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:Project', Values: [name] },
          { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
        ],
      }),
    );
    return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  }

  async function taggedGroups(name: string) {
    const out = await ec2.send(
      new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'tag:Project', Values: [name] }] }),
    );
    return out.SecurityGroups ?? [];
  }

  async function exists(call: Promise<unknown>): Promise<boolean> {
    try {
      await call;
      return true;
    } catch (err) {
      if (['NoSuchEntity', 'NoSuchEntityException', 'ParameterNotFound'].includes((err as Error).name)) {
        return false;
      }
      throw err;
    }
  }

  /** What exists for a name: compared before and after a dry run, and after teardown. */
  async function snapshot(name: string) {
    return {
      instances: (await liveInstances(name)).length,
      groups: (await taggedGroups(name)).length,
      role: await exists(iam.send(new GetRoleCommand({ RoleName: `${name}-agent` }))),
      profile: await exists(
        iam.send(new GetInstanceProfileCommand({ InstanceProfileName: `${name}-agent` })),
      ),
      token: await exists(ssm.send(new GetParameterCommand({ Name: defaultTokenParameter(name) }))),
      commands: (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0,
    };
  }

  return { liveInstances, taggedGroups, exists, snapshot };
}

export function noStack(t: { notMatch(a: unknown, b: RegExp, m: string): unknown }, run: Run) {
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

/**
 * The steps a command's output names, in order: the label of each ✓ line and, after a dry run's
 * heading, the name each plan line starts with. An agent command's label carries its part
 * (`random-number agent <sha>: part 1 of 3`), the one label with a colon.
 */
export function stepNames(stdout: string): string[] {
  const names: string[] = [];
  let planning = false;
  for (const line of stdout.split('\n')) {
    planning ||= line.startsWith('dry run: ');
    const text =
      /^\[\s*[\d.]+ s\] ✓ (.*) \([\d.]+ s\)$/.exec(line)?.[1] ??
      (planning ? /^ {2}(\S.*)$/.exec(line)?.[1] : undefined);
    const name = text && /^(random-number agent \w+: [^:]+|[^:]+)/.exec(text)?.[1];
    if (name) names.push(name);
  }
  return names;
}

/** What a teardown dry run's plan lines name (`<step>: remove a, b`), or a real one's "removed N:" lists. */
export function teardownNames(stdout: string): string[] {
  const planned = [...stdout.matchAll(/^ {2}[^:]+: remove (.+)$/gm)].flatMap((m) => m[1]?.split(', ') ?? []);
  const removed = /^removed \d+:\n((?: {2}.+\n?)+)/m.exec(stdout)?.[1]?.trimEnd().split('\n') ?? [];
  return [...planned.filter((what) => what !== 'nothing'), ...removed.map((what) => what.trim())];
}
