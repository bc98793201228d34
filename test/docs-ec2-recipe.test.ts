import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  GetInstanceProfileCommand,
  IAMClient,
  ListInstanceProfilesCommand,
  ListPoliciesCommand,
  ListPolicyTagsCommand,
  ListRolesCommand,
  ListRoleTagsCommand,
  type Tag,
} from '@aws-sdk/client-iam';
import { DescribeParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import t from 'tap';
import { CREATED_BY_TAG } from '../scripts/aws/tags.ts';
import { freePort } from './helpers/net.ts';
import { eventually, type Output, outputOf, startForegroundJob } from './helpers/process.ts';

// docs/ec2.md's by-hand block ("Try it locally"), run as a reader runs it: line by line from the
// repository's root, in one shell's environment (what a line exports, the next one sees), against a
// real moto_server. Only this is substituted, each for a reason:
// - the port: the doc's 5000 becomes a free loopback port (5000 may be taken; tests run in parallel);
// - the emulator line's trailing `&`: the test holds that process itself instead of a shell's job
//   table, to wait until it answers and to stop it (its process group) when the test ends;
// - HOME: an empty temp dir, so nothing of this machine's ~/.aws (a profile, a region, `output =
//   table`) or ~/.npmrc changes what the commands do, and npm_config_update_notifier=false, so npm in
//   that fresh HOME does not ask the registry for a newer npm (traffic off loopback).
// The service URL stays as written: the emulator runs no command, so nothing connects to it.
// A quoted text in a line's comment is what the doc says that line prints: each is checked.
// `npm run provision-ec2` remakes dist/ first only when a source is newer than it (make bundles): under
// `make test`, which builds before any test runs, it never rebuilds dist/ under the other test files.
t.setTimeout(240_000);
const ROOT = resolve(import.meta.dirname, '..');
const MARKER =
  '<!-- test/docs-ec2-recipe.test.ts runs the block below, command by command, against moto_server -->';
const DOC_PORT = '5000';
const STEP_TIMEOUT_MS = 120_000;

/** The block's text, found by the marker comment right above its fence. */
function block(): string {
  const text = readFileSync(join(ROOT, 'docs/ec2.md'), 'utf8');
  const fence = `${MARKER}\n\`\`\`sh\n`;
  const start = text.indexOf(fence);
  if (start < 0) throw new Error(`docs/ec2.md: no \`\`\`sh block right after the line ${MARKER}`);
  const body = text.slice(start + fence.length);
  return body.slice(0, body.indexOf('```\n'));
}

/** Its commands: one per line, a line ending in a backslash joined to the next (as the shell does). */
function commands(text: string): string[] {
  return text
    .replaceAll('\\\n', '')
    .split('\n')
    .filter((line) => line.trim() && !line.trimStart().startsWith('#'));
}

/** What a line's comment quotes, as patterns: `...` stands for any text within a line. */
function quotedOutputs(command: string): RegExp[] {
  const comment = /\s#\s(.*)$/.exec(command)?.[1] ?? '';
  return [...comment.matchAll(/"([^"]+)"/g)].map(
    ([, quoted]) =>
      new RegExp(
        (quoted as string)
          .split('...')
          .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('[^\\n]*'),
      ),
  );
}

type Env = Record<string, string>;

t.test('shellcheck finds nothing in the block', async (t) => {
  const r = spawnSync('shellcheck', ['--shell=sh', '-'], { input: block(), encoding: 'utf8' });
  if (r.error) throw new Error(`shellcheck could not run (make prereqs installs it): ${r.error.message}`);
  t.equal(r.status, 0, `shellcheck on docs/ec2.md's by-hand block${r.stdout ? `\n${r.stdout}` : ''}`);
});

t.test("docs/ec2.md's by-hand block runs against moto_server as written", async (t) => {
  const text = block();
  t.equal(text.split(DOC_PORT).length - 1, 2, `port ${DOC_PORT} twice: the emulator's -p and the endpoint`);
  const port = String(await freePort());
  const endpoint = `http://127.0.0.1:${port}`;
  const steps = commands(text.replaceAll(DOC_PORT, port));
  const home = mkdtempSync(join(tmpdir(), 'recipe-home-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  let env: Env = { PATH: process.env.PATH ?? '', HOME: home, npm_config_update_notifier: 'false' };

  /** One line in a shell of its own; the environment it ends with (written to fd 3) is the next's. */
  async function run(command: string): Promise<Output> {
    const child = spawn('bash', ['-c', `${command}\ns=$?\nenv -0 >&3\nexit "$s"`], {
      cwd: ROOT,
      env,
      detached: true, // its own process group: a timeout or the test's end stops npm, tsx and node too
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null)
        process.kill(-(child.pid as number), 'SIGKILL');
    };
    const timer = setTimeout(kill, STEP_TIMEOUT_MS);
    t.teardown(kill);
    let dumped = '';
    child.stdio[3]?.on('data', (d: Buffer) => {
      dumped += d;
    });
    const out = await outputOf(child);
    clearTimeout(timer);
    if (dumped) {
      env = Object.fromEntries(
        dumped
          .split('\0')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      );
    }
    return out;
  }

  /** The emulator line, its `&` dropped: started in a process group the test stops, awaited until it answers. */
  async function emulator(command: string): Promise<Output> {
    if (!/ -H 127\.0\.0\.1 /.test(command))
      throw new Error(`the emulator must listen on 127.0.0.1 only: ${command}`);
    const job = startForegroundJob(t, 'bash', ['-c', command.replace(/&(\s*(#.*)?)$/, '$1')], {
      env,
      cwd: ROOT,
    });
    const answers = async () =>
      fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) })
        .then((res) => res.arrayBuffer())
        .then(() => true)
        .catch(() => undefined);
    await Promise.race([
      eventually(`moto_server to answer on ${endpoint}`, answers),
      job.exited.then(() => {
        throw new Error(`the emulator line ended: ${command}\n${job.err.join('\n')}`);
      }),
    ]);
    // A background job has no exit status yet: it is running, which is what the line is for.
    return { code: null, stdout: job.out.join('\n'), stderr: job.err.join('\n') };
  }

  const aws = {
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  };
  const ec2 = new EC2Client(aws);
  const iam = new IAMClient(aws);
  const ssm = new SSMClient(aws);
  const ours = (tags?: Tag[]) =>
    tags?.some(({ Key, Value }) => Key === CREATED_BY_TAG.Key && Value === CREATED_BY_TAG.Value) ?? false;

  /** Everything in the emulator tagged as provision-ec2's (instances: unless terminated). */
  async function tagged(): Promise<string[]> {
    const filter = { Name: `tag:${CREATED_BY_TAG.Key}`, Values: [CREATED_BY_TAG.Value] };
    const live = { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] };
    const { Reservations } = await ec2.send(new DescribeInstancesCommand({ Filters: [filter, live] }));
    const { SecurityGroups } = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [filter] }));
    const { Volumes } = await ec2.send(new DescribeVolumesCommand({ Filters: [filter] }));
    const found = [
      ...(Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => `instance ${i.InstanceId}`),
      ...(SecurityGroups ?? []).map((g) => `security group ${g.GroupName}`),
      ...(Volumes ?? []).map((v) => `volume ${v.VolumeId}`),
    ];
    for (const { RoleName } of (await iam.send(new ListRolesCommand({}))).Roles ?? []) {
      if (ours((await iam.send(new ListRoleTagsCommand({ RoleName }))).Tags)) found.push(`role ${RoleName}`);
    }
    for (const { InstanceProfileName } of (await iam.send(new ListInstanceProfilesCommand({})))
      .InstanceProfiles ?? []) {
      // moto has no ListInstanceProfileTags; GetInstanceProfile carries the tags in AWS too.
      const { InstanceProfile } = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName }));
      if (ours(InstanceProfile?.Tags)) found.push(`instance profile ${InstanceProfileName}`);
    }
    for (const { Arn, PolicyName } of (await iam.send(new ListPoliciesCommand({ Scope: 'Local' })))
      .Policies ?? []) {
      if (ours((await iam.send(new ListPolicyTagsCommand({ PolicyArn: Arn }))).Tags)) {
        found.push(`policy ${PolicyName}`);
      }
    }
    const { Parameters } = await ssm.send(
      new DescribeParametersCommand({ ParameterFilters: [{ Key: filter.Name, Values: filter.Values }] }),
    );
    found.push(...(Parameters ?? []).map((p) => `parameter ${p.Name}`));
    return found.sort();
  }
  // iam-bootstrap's boundary is made once per account and outlives every provision and teardown.
  const BOUNDARY = 'policy random-number-agent-boundary';

  // What the test knows about each line beyond its exit status and quoted outputs; every one must run.
  let instance = '';
  let parts = 0;
  const checks: [RegExp, (r: Output) => Promise<unknown>][] = [
    [
      /^MOTO_IAM_LOAD_MANAGED_POLICIES=true moto_server -H 127\.0\.0\.1 -p \d+ &/,
      async () => t.same(await tagged(), [], 'the emulator answers, with nothing in it yet'),
    ],
    [
      /^npm run iam-bootstrap\b/,
      async () => t.same(await tagged(), [BOUNDARY], 'iam-bootstrap made the boundary'),
    ],
    [
      /^npm run provision-ec2 -- .*--dry-run/,
      async (r) => {
        t.match(
          r.stdout,
          /^ {2}launch: create 1 instance t3\.micro from ami-\w+/m,
          'the plan names the launch',
        );
        t.same(await tagged(), [BOUNDARY], 'the dry run created nothing');
      },
    ],
    [
      /^npm run provision-ec2 -- (?!.*--dry-run)/,
      async (r) => {
        instance = /done: the agent is installed on (i-\w+)/.exec(r.stdout)?.[1] ?? '';
        parts = Number(/: part 1 of (\d+):/.exec(r.stdout)?.[1] ?? 0);
        const made = await tagged();
        for (const what of [
          `instance ${instance}`,
          'security group random-number',
          'role random-number-agent',
          'instance profile random-number-agent',
        ]) {
          t.ok(made.includes(what), `provision-ec2 made ${what}, tagged (all: ${made.join(', ')})`);
        }
      },
    ],
    [
      /^aws ssm list-commands --query 'Commands\[\]\.Comment'/,
      async (r) => {
        const comments = JSON.parse(r.stdout) as string[];
        t.ok(parts > 0, `provision-ec2 sent the agent in ${parts} parts`);
        t.equal(comments.filter((c) => /: part \d+ of \d+$/.test(c)).length, parts, 'a comment per part');
        t.equal(comments.filter((c) => c.endsWith('verify and install')).length, 1, 'and the install');
      },
    ],
    [
      /^aws ssm list-commands --query "Commands\[\?ends_with/,
      async (r) => {
        const [install, ...more] = JSON.parse(r.stdout) as string[][];
        t.equal(more.length, 0, 'exactly one install command, as JSON');
        t.match(install?.at(-1), /^bash "\$d\/install\.sh"/, 'its last line runs install.sh');
        t.match(install?.at(-1), "'--service-url' 'http://127.0.0.1:8080/'", "with the doc's service URL");
      },
    ],
    [/^npm run ec2-results\b/, async (r) => t.match(r.stdout, `== ${instance}`, 'asks the instance made')],
    [
      /^npm run teardown-ec2\b/,
      async (r) => {
        t.match(r.stdout, `instance ${instance}`, 'teardown names the instance it removed');
        t.same(await tagged(), [BOUNDARY], 'teardown left nothing tagged behind but the boundary');
      },
    ],
  ];
  const ran = new Set<RegExp>();

  for (const command of steps) {
    const check = checks.find(([pattern]) => pattern.test(command));
    if (check) ran.add(check[0]);
    const background = /&\s*(#.*)?$/.test(command);
    const r = background ? await emulator(command) : await run(command);
    if (!background) t.equal(r.code, 0, `exits 0: ${command}`, { stderr: r.stderr.slice(-3000) });
    for (const said of quotedOutputs(command)) t.match(r.stdout, said, `prints ${said}: ${command}`);
    await check?.[1](r);
  }
  t.same(
    checks.filter(([pattern]) => !ran.has(pattern)).map(([pattern]) => String(pattern)),
    [],
    'the block has every line the test knows (bootstrap, dry run, provision, both list-commands, results, teardown)',
  );
});
