import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeVolumesCommand,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import {
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
} from '@aws-sdk/client-iam';
import {
  GetParameterCommand,
  ListCommandsCommand,
  ListTagsForResourceCommand,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import t from 'tap';
import { sha256 } from '../scripts/aws/delivery.ts';
import { startMoto } from './helpers/moto.ts';

// The real CLIs as processes, over HTTP against moto_server on a free loopback port.
const moto = await startMoto(t);
const clientConfig = {
  region: 'us-east-1',
  endpoint: moto.endpoint,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
};
const ec2 = new EC2Client(clientConfig);
const iam = new IAMClient(clientConfig);
const ssm = new SSMClient(clientConfig);
const home = mkdtempSync(join(tmpdir(), 'aws-home-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the EC2 CLIs with moto's environment (plus `env`, where undefined removes a variable). */
function cli(script: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const merged: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: home,
    NODE_NO_WARNINGS: '1',
    ...moto.env,
    ...env,
  };
  const child = spawn(
    'node_modules/.bin/tsx',
    [`scripts/${script}.ts`, ...args, '--poll-interval-ms', '20'],
    {
      env: Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d;
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

const URL_ = 'https://random-number.default.example.com';
const NAME = 'rn-e2e';

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
    if (['NoSuchEntity', 'NoSuchEntityException', 'ParameterNotFound'].includes((err as Error).name))
      return false;
    throw err;
  }
}

async function snapshot(name: string) {
  return {
    instances: (await liveInstances(name)).length,
    groups: (await taggedGroups(name)).length,
    role: await exists(iam.send(new GetRoleCommand({ RoleName: `${name}-agent` }))),
    profile: await exists(iam.send(new GetInstanceProfileCommand({ InstanceProfileName: `${name}-agent` }))),
    token: await exists(ssm.send(new GetParameterCommand({ Name: `/${name}/api-token` }))),
    commands: (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0,
  };
}

function noStack(t: { notMatch(a: unknown, b: RegExp, m: string): unknown }, run: Run) {
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

t.test('without moto_server the harness fails and says how to install it', async (t) => {
  const teardowns: (() => unknown)[] = [];
  await t.rejects(
    startMoto({ teardown: (fn) => teardowns.push(fn) }, { command: 'moto_server-not-installed-here' }),
    { message: "moto_server not found: install it: pip install 'moto[server]'" },
    'a failure naming pip install moto[server], not a skip',
  );
  for (const fn of teardowns) await fn();
});

t.test('missing credentials, region or --service-url give one clear line and exit 1', async (t) => {
  // Independent processes: run side by side to keep the file fast.
  const [noCreds, noRegion, noUrl, unknown, help] = await Promise.all([
    cli('provision-ec2', ['--service-url', URL_], {
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
    }),
    cli('provision-ec2', ['--service-url', URL_], { AWS_REGION: undefined }),
    cli('provision-ec2', []),
    cli('provision-ec2', ['--service-url', URL_, '--instance-count', '2']),
    cli('provision-ec2', ['--help']),
  ]);
  t.equal(noCreds.code, 1, 'exit 1 without credentials');
  t.match(
    noCreds.stderr,
    /no AWS credentials found: set AWS_PROFILE .* AWS_ACCESS_KEY_ID/,
    'says what to set',
  );
  noStack(t, noCreds);

  t.equal(noRegion.code, 1, 'exit 1 without a region');
  t.match(noRegion.stderr, /no AWS region: set AWS_REGION/, 'says to set AWS_REGION');
  noStack(t, noRegion);

  t.equal(noUrl.code, 1, 'exit 1 without --service-url');
  t.match(noUrl.stderr, /--service-url is required/, 'names --service-url');
  noStack(t, noUrl);

  t.equal(unknown.code, 1, 'exit 1 for an unknown flag');
  t.match(unknown.stderr, /Unknown option '--instance-count'.*see --help/, 'names the unknown flag');

  t.equal(help.code, 0, '--help exits 0');
  t.match(help.stdout, /--service-url URL/, '--help lists the flags');
});

t.test('dry run prints the plan and changes nothing', async (t) => {
  const before = await snapshot(NAME);
  const [run, arm] = await Promise.all([
    cli('provision-ec2', ['--service-url', URL_, '--name', NAME, '--dry-run'], { API_TOKEN: 'dry' }),
    cli('provision-ec2', [
      '--service-url',
      URL_,
      '--name',
      NAME,
      '--dry-run',
      '--instance-type',
      't4g.micro',
    ]),
  ]);
  t.equal(run.code, 0, `exit 0 (${run.stderr})`);
  t.match(run.stdout, /dry run: nothing was changed/, 'says nothing changed');
  t.match(run.stdout, /create IAM role rn-e2e-agent/, 'plans the role');
  t.match(run.stdout, /create security group rn-e2e .*no inbound rules/, 'plans the security group');
  t.match(
    run.stdout,
    /create 1 instance t3\.micro from ami-\w+, IMDSv2 required, encrypted gp3/,
    'plans the instance',
  );
  t.match(run.stdout, /create SecureString \/rn-e2e\/api-token/, 'plans the token parameter');
  t.same(await snapshot(NAME), before, 'moto state is unchanged');

  t.match(arm.stdout, /Amazon Linux 2023 arm64/, 'a Graviton type gets the arm64 AMI');
});

let firstInstanceId = '';

t.test('a full run leaves one locked-down instance with the agent sent through Run Command', async (t) => {
  const token = 'tok-e2e-7f3a9c';
  const run = await cli('provision-ec2', ['--service-url', URL_, '--name', NAME], { API_TOKEN: token });
  t.equal(run.code, 0, `exit 0 (${run.stderr})`);
  t.notMatch(run.stdout + run.stderr, token, 'the token is never printed');
  for (const step of [
    'credentials',
    'AMI',
    'IAM role and instance profile',
    'security group',
    'launch',
    'running',
    'SSM registration',
  ]) {
    t.match(
      run.stdout,
      new RegExp(`\\[\\s*[\\d.]+ s\\] ✓ ${step}`),
      `a line with elapsed time for step "${step}"`,
    );
  }
  t.match(run.stdout, /npm run ec2-results -- --name rn-e2e/, 'says how to read the results');
  t.match(run.stdout, /npm run teardown-ec2 -- --name rn-e2e/, 'says how to tear down');

  const instances = await liveInstances(NAME);
  t.equal(instances.length, 1, 'one instance');
  const instance = instances[0] as Instance;
  firstInstanceId = instance.InstanceId ?? '';
  t.match(run.stdout, `installed on ${firstInstanceId} in us-east-1`, 'prints the instance id and region');
  const tags = Object.fromEntries((instance.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
  t.same([tags.Name, tags.Project], [NAME, NAME], 'instance tagged Name and Project');
  t.equal(instance.MetadataOptions?.HttpTokens, 'required', 'IMDSv2 required');
  t.match(
    instance.IamInstanceProfile?.Arn,
    /instance-profile\/rn-e2e-agent$/,
    'the instance profile is attached',
  );
  t.equal(instance.InstanceType, 't3.micro', 't3.micro by default');

  const volumeId = instance.BlockDeviceMappings?.[0]?.Ebs?.VolumeId as string;
  const volume = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0];
  t.equal(volume?.VolumeType, 'gp3', 'root volume is gp3');
  t.equal(volume?.Encrypted, true, 'root volume is encrypted');
  t.ok(
    volume?.Tags?.some((tag) => tag.Key === 'Project' && tag.Value === NAME),
    'root volume tagged Project',
  );

  const groups = await taggedGroups(NAME);
  t.equal(groups.length, 1, 'one security group tagged Project');
  t.equal(groups[0]?.GroupName, NAME, 'named after the project');
  t.same(groups[0]?.IpPermissions, [], 'no inbound rules');
  t.same(
    instance.SecurityGroups?.map((g) => g.GroupId),
    [groups[0]?.GroupId],
    'the instance uses it',
  );

  const role = await iam.send(new GetRoleCommand({ RoleName: 'rn-e2e-agent' }));
  t.ok(
    role.Role?.Tags?.some((tag) => tag.Key === 'Project' && tag.Value === NAME),
    'role tagged Project',
  );
  t.match(
    decodeURIComponent(String(role.Role?.AssumeRolePolicyDocument)),
    'ec2.amazonaws.com',
    'trusted by EC2',
  );
  const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: 'rn-e2e-agent' }));
  t.ok(
    attached.AttachedPolicies?.some((p) => p.PolicyName === 'AmazonSSMManagedInstanceCore'),
    'AmazonSSMManagedInstanceCore attached',
  );
  const inline = await iam.send(
    new GetRolePolicyCommand({ RoleName: 'rn-e2e-agent', PolicyName: 'read-api-token' }),
  );
  const policy = JSON.parse(decodeURIComponent(String(inline.PolicyDocument)));
  t.same(
    policy.Statement,
    [
      {
        Effect: 'Allow',
        Action: 'ssm:GetParameter',
        Resource: 'arn:aws:ssm:us-east-1:123456789012:parameter/rn-e2e/api-token',
      },
    ],
    'the role may read that one parameter and nothing else',
  );

  const parameter = await ssm.send(
    new GetParameterCommand({ Name: '/rn-e2e/api-token', WithDecryption: true }),
  );
  t.equal(parameter.Parameter?.Type, 'SecureString', 'the token is a SecureString');
  t.equal(parameter.Parameter?.Value, token, 'holding the token');

  const commands = (await ssm.send(new ListCommandsCommand({}))).Commands ?? [];
  const install = commands.filter((c) => c.Comment?.includes('verify and install'));
  t.equal(install.length, 1, 'one install command');
  t.equal(install[0]?.DocumentName, 'AWS-RunShellScript', 'sent as AWS-RunShellScript');
  t.same(install[0]?.Targets, [{ Key: 'tag:Project', Values: [NAME] }], 'targets the instances by tag');
  const script = install[0]?.Parameters?.commands?.join('\n') ?? '';
  t.match(script, sha256(readFileSync('dist/ec2-agent.mjs')), 'carries the bundle checksum to verify');
  t.match(
    script,
    /install\.sh" --bundle "\$d\/ec2-agent\.mjs" --sha256 \w{64} '--service-url' 'https:\/\/random-number/,
    'runs install.sh with the service URL',
  );
  t.match(
    script,
    "'--api-token-parameter' '/rn-e2e/api-token'",
    'passes the token parameter name, not the token',
  );
  t.notMatch(script, token, 'the token is not in the command');
  const parts = commands.filter((c) => /part \d+ of \d+/.test(c.Comment ?? ''));
  t.ok(parts.length >= 2, `the bundle went in ${parts.length} part commands`);
});

t.test('a second run reuses everything and re-installs', async (t) => {
  const before = await snapshot(NAME);
  const run = await cli('provision-ec2', ['--service-url', URL_, '--name', NAME]);
  t.equal(run.code, 0, `exit 0 (${run.stderr})`);
  t.match(run.stdout, /created: nothing/, 'created nothing');
  t.match(run.stdout, `reused:  IAM role rn-e2e-agent`, 'reused the role');
  const instances = await liveInstances(NAME);
  t.same(
    instances.map((i) => i.InstanceId),
    [firstInstanceId],
    'still the one instance',
  );
  t.equal((await taggedGroups(NAME)).length, 1, 'still one security group');
  const after = await snapshot(NAME);
  t.ok(after.commands > before.commands, 'the agent was sent again (an upgrade path)');
});

t.test('ec2-results reads through SSM and says plainly there is nothing yet', async (t) => {
  const run = await cli('ec2-results', ['--name', NAME, '--lines', '5']);
  t.equal(run.code, 0, `exit 0 (${run.stderr})`);
  t.match(run.stdout, `== ${firstInstanceId}`, 'one section for the instance');
  t.match(run.stdout, /nothing yet/, 'the emulator runs nothing, so there is nothing yet');
  const commands = (await ssm.send(new ListCommandsCommand({}))).Commands ?? [];
  const read = commands.filter((c) => c.Comment === 'random-number agent: read results');
  t.match(
    read.at(-1)?.Parameters?.commands?.join('\n'),
    /tail -n 5 "\$f"/,
    'tail of the output file through Run Command',
  );
});

t.test('teardown removes everything tagged; twice is fine', async (t) => {
  const run = await cli('teardown-ec2', ['--name', NAME]);
  t.equal(run.code, 0, `exit 0 (${run.stderr})`);
  t.match(run.stdout, `instance ${firstInstanceId}`, 'reports the terminated instance');
  t.match(run.stdout, /SecureString \/rn-e2e\/api-token/, 'reports the deleted token parameter');
  t.same(
    await snapshot(NAME).then(({ commands: _, ...rest }) => rest),
    { instances: 0, groups: 0, role: false, profile: false, token: false },
    'no instance, group, role, profile or parameter left',
  );
  const volumes = await ec2.send(
    new DescribeVolumesCommand({ Filters: [{ Name: 'tag:Project', Values: [NAME] }] }),
  );
  t.same(
    (volumes.Volumes ?? []).filter((v) => v.State !== 'deleted' && v.State !== 'deleting'),
    [],
    'no tagged volume left',
  );

  const [again, results] = await Promise.all([
    cli('teardown-ec2', ['--name', NAME]),
    cli('ec2-results', ['--name', NAME]),
  ]);
  t.equal(again.code, 0, 'a second teardown exits 0');
  t.match(again.stdout, /nothing to remove/, 'and says there was nothing to remove');

  t.equal(results.code, 1, 'ec2-results without instances exits 1');
  t.match(
    results.stderr,
    /no running instance tagged Project=rn-e2e: run `npm run provision-ec2/,
    'and says what to do',
  );
  noStack(t, results);
});

t.test(
  'a fleet gets one command per step; a token parameter made by the user survives teardown',
  async (t) => {
    const name = 'rn-fleet';
    await ssm.send(
      new PutParameterCommand({ Name: '/shared/token', Value: 'users-own', Type: 'SecureString' }),
    );
    const before = (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0;
    const run = await cli('provision-ec2', [
      '--service-url',
      URL_,
      '--name',
      name,
      '--count',
      '2',
      '--api-token-parameter',
      '/shared/token',
    ]);
    t.equal(run.code, 0, `exit 0 (${run.stderr})`);
    t.equal((await liveInstances(name)).length, 2, 'two instances');
    const sent = ((await ssm.send(new ListCommandsCommand({}))).Commands ?? []).slice(before);
    const installs = sent.filter((c) => c.Comment?.includes('verify and install'));
    t.equal(installs.length, 1, 'one install command for the whole fleet');
    t.equal(installs[0]?.TargetCount, 2, 'reaching both instances');
    t.equal(installs[0]?.MaxErrors, '0', 'MaxErrors set');
    t.equal(installs[0]?.MaxConcurrency, '100%', 'MaxConcurrency set');

    const down = await cli('teardown-ec2', ['--name', name, '--api-token-parameter', '/shared/token']);
    t.equal(down.code, 0, `teardown exits 0 (${down.stderr})`);
    t.match(
      down.stdout,
      /\/shared\/token kept \(not created by provision-ec2\)/,
      'says the parameter is kept',
    );
    const kept = await ssm.send(new GetParameterCommand({ Name: '/shared/token', WithDecryption: true }));
    t.equal(kept.Parameter?.Value, 'users-own', 'the user-made parameter is still there');
    const tags = await ssm.send(
      new ListTagsForResourceCommand({ ResourceType: 'Parameter', ResourceId: '/shared/token' }),
    );
    t.same(tags.TagList ?? [], [], 'and was not tagged by us');
    t.equal((await liveInstances(name)).length, 0, 'the fleet is gone');
  },
);
