import {
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  EC2Client,
  type InstanceStateName,
  StartInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  ListAttachedRolePoliciesCommand,
  RemoveRoleFromInstanceProfileCommand,
} from '@aws-sdk/client-iam';
import { DeleteParameterCommand, ListCommandsCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import t from 'tap';
import { AwsStateError } from '../scripts/aws/errors.ts';
import { startStopped } from '../scripts/aws/instances.ts';
import { projectTags } from '../scripts/aws/tags.ts';
import { startAwsCli, stepNames } from './helpers/aws-cli.ts';

// Re-runs of provision-ec2 (the upgrade path): the token is kept without token flags (and its customer
// managed key), stopped and stopping instances are started, not replaced; a re-run stays in the
// instances' VPC, and says what it does not change (fewer --count, another --instance-type).

const URL_ = 'https://random-number.default.example.com';
const meta = { $metadata: {} };
// Started before any subtest: tap ends the root test (and its teardowns) once queued subtests finish.
const aws = await startAwsCli(t);
// The SDK clients built in this process (the mocks below): no Node 20 warning in the test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

t.test('stopping instances are awaited until stopped, then started with the stopped ones', async (t) => {
  const ec2 = new EC2Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const mock = mockClient(ec2);
  t.teardown(() => mock.restore());
  const state = (name: InstanceStateName) => ({
    ...meta,
    Reservations: [{ Instances: [{ InstanceId: 'i-stopping', State: { Name: name } }] }],
  });
  mock.on(DescribeInstancesCommand).resolvesOnce(state('stopping')).resolves(state('stopped'));
  mock.on(StartInstancesCommand).resolves(meta);
  const started = await startStopped(
    ec2,
    [
      { instanceId: 'i-stopping', state: 'stopping' },
      { instanceId: 'i-stopped', state: 'stopped' },
      { instanceId: 'i-running', state: 'running' },
    ],
    { delaySeconds: 0.01, maxWaitSeconds: 5 },
  );
  t.same(started.sort(), ['i-stopped', 'i-stopping'], 'both were started, the running one left alone');
  t.same(
    mock.commandCalls(StartInstancesCommand)[0]?.args[0].input.InstanceIds?.sort(),
    ['i-stopped', 'i-stopping'],
    'one StartInstances call for both',
  );
  t.ok(
    mock.commandCalls(DescribeInstancesCommand).length >= 2,
    'the stopping one was polled until stopped before StartInstances',
  );
});

t.test('an instance stuck stopping fails with a message naming it and what to do', async (t) => {
  const ec2 = new EC2Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const mock = mockClient(ec2);
  t.teardown(() => mock.restore());
  mock.on(DescribeInstancesCommand).resolves({
    ...meta,
    Reservations: [{ Instances: [{ InstanceId: 'i-stuck', State: { Name: 'stopping' } }] }],
  });
  await t.rejects(
    startStopped(ec2, [{ instanceId: 'i-stuck', state: 'stopping' }], {
      delaySeconds: 0.01,
      maxWaitSeconds: 0.1,
    }),
    { name: AwsStateError.name, message: /i-stuck still stopping after 0.1 s.*run again later/ },
    'names the instance and what to do',
  );
  t.equal(mock.commandCalls(StartInstancesCommand).length, 0, 'StartInstances was not tried');
});

t.test('a re-run without token flags keeps the token; a stopped instance is started', async (t) => {
  const name = 'rn-keep';
  const first = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', name], {
    API_TOKEN: 'tok-keep-1-0123456789abcdef0123456789',
  });
  t.equal(first.code, 0, `first run exits 0 (${first.stderr})`);
  const [instance] = await aws.liveInstances(name);
  const instanceId = instance?.InstanceId as string;
  await aws.ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
  t.match((await aws.liveInstances(name))[0]?.State?.Name, /stopp/, 'the instance is stopped (or stopping)');

  const dry = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', name, '--dry-run']);
  t.equal(dry.code, 0, `dry run exits 0 (${dry.stderr})`);
  t.match(
    dry.stdout,
    /reusing SecureString \/random-number\/rn-keep\/api-token/,
    'the dry run says the token is reused',
  );
  t.match(
    dry.stdout,
    new RegExp(`^ {2}start stopped instances: start ${instanceId} \\(stopp\\w+\\)$`, 'm'),
    'and the start',
  );

  // The kept token is still a token: an http:// URL needs the same consent as a token given now.
  const plain = ['--service-url', 'http://random-number.example/', '--name', name, '--dry-run'];
  const clear = await aws.cli('provision-ec2', plain);
  t.equal(clear.code, 2, 'a re-run to an http:// URL with the kept token is refused');
  t.match(
    clear.stderr,
    /API token \(kept from an earlier run: \/random-number\/rn-keep\/api-token\) in clear; .*--allow-plain-http/,
    'naming the kept parameter and the flag that accepts it',
  );
  const allowed = await aws.cli('provision-ec2', [...plain, '--allow-plain-http']);
  t.equal(allowed.code, 0, `with --allow-plain-http the plan goes ahead (${allowed.stderr})`);

  const again = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', name]);
  t.equal(again.code, 0, `second run without API_TOKEN exits 0 (${again.stderr})`);
  t.match(
    again.stdout,
    'API token: reusing SecureString /random-number/rn-keep/api-token (the one the agent role may read since an earlier run)',
    'says the token parameter is reused',
  );
  t.match(again.stdout, new RegExp(`✓ start stopped instances: started ${instanceId}`), 'started it');
  t.same(stepNames(dry.stdout), stepNames(again.stdout), 'the dry run named every step the run reported');
  t.notMatch(`${dry.stdout}${again.stdout}`, /^note:/m, 'no note: the run asks for what exists');
  const after = await aws.liveInstances(name);
  t.same(
    after.map((i) => [i.InstanceId, i.State?.Name]),
    [[instanceId, 'running']],
    'the same instance, running again; none launched',
  );

  const policy = await aws.iam.send(
    new GetRolePolicyCommand({ RoleName: `${name}-agent`, PolicyName: 'agent-parameters' }),
  );
  t.match(
    decodeURIComponent(policy.PolicyDocument ?? ''),
    '"Resource":"arn:aws:ssm:us-east-1:123456789012:parameter/random-number/rn-keep/api-token"',
    'the role still may read the token parameter',
  );
  const role = await aws.iam.send(new GetRoleCommand({ RoleName: `${name}-agent` }));
  t.same(
    role.Role?.Tags?.find((tag) => tag.Key === 'TokenParameter')?.Value,
    'random-number/rn-keep/api-token',
    'the decision is recorded on the role (as in the ARN), where the next run reads it',
  );
  const attached = await aws.iam.send(new ListAttachedRolePoliciesCommand({ RoleName: `${name}-agent` }));
  t.ok(
    attached.AttachedPolicies?.some(
      (p) => p.PolicyArn === 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore',
    ),
    'the managed SSM policy is attached (commercial partition in moto)',
  );
  const installs = ((await aws.ssm.send(new ListCommandsCommand({}))).Commands ?? []).filter(
    (c) => c.Comment?.includes('verify and install') && c.Targets?.[0]?.Values?.includes(name),
  );
  t.equal(installs.length, 2, 'two install commands, one per run');
  for (const [i, install] of installs.entries()) {
    t.match(
      install.Parameters?.commands?.join('\n') ?? '',
      "'--api-token-parameter' '/random-number/rn-keep/api-token'",
      `install command ${i + 1} passes the token parameter`,
    );
  }
});

t.test('the default parameter is reused only if provision-ec2 created it', async (t) => {
  // A role from an earlier run is not needed: the tagged default parameter alone is enough, and an
  // untagged one (someone's own) is named but not used.
  const [ours, theirs] = ['rn-tagged', 'rn-foreign'];
  await aws.ssm.send(
    new PutParameterCommand({
      Name: `/random-number/${ours}/api-token`,
      Value: 'x',
      Type: 'SecureString',
      Tags: [
        { Key: 'Project', Value: ours },
        { Key: 'CreatedBy', Value: 'random-number-provision-ec2' },
      ],
    }),
  );
  await aws.ssm.send(
    new PutParameterCommand({
      Name: `/random-number/${theirs}/api-token`,
      Value: 'y',
      Type: 'SecureString',
    }),
  );
  const [a, b] = await Promise.all([
    aws.cli('provision-ec2', ['--service-url', URL_, '--name', ours, '--dry-run']),
    aws.cli('provision-ec2', ['--service-url', URL_, '--name', theirs, '--dry-run']),
  ]);
  t.equal(a.code, 0, `exit 0 (${a.stderr})`);
  t.match(
    a.stdout,
    `reusing SecureString /random-number/${ours}/api-token (created by an earlier run)`,
    'ours: reused',
  );
  t.match(
    a.stdout,
    `IAM role and instance profile: create IAM role ${ours}-agent (AmazonSSMManagedInstanceCore, permissions boundary, ssm:GetParameter on /random-number/${ours}/api-token)`,
    'the plan gives the role read access to it',
  );
  t.equal(b.code, 0, `exit 0 (${b.stderr})`);
  t.match(
    b.stdout,
    `/random-number/${theirs}/api-token exists but was not created by provision-ec2 for ${theirs}: not used; pass --api-token-parameter`,
    'not ours: named, not used',
  );
  t.match(b.stdout, 'permissions boundary, no parameter)', 'and the role gets no read access');
});

t.test(
  'a token parameter under a customer managed key: the role may decrypt with it, through SSM only',
  async (t) => {
    const name = 'rn-cmk';
    const parameter = `/random-number/${name}/api-token`;
    await aws.ssm.send(
      new PutParameterCommand({
        Name: parameter,
        Value: 'k',
        Type: 'SecureString',
        KeyId: 'alias/rn-tokens',
      }),
    );
    const args = ['--service-url', URL_, '--name', name, '--api-token-parameter', parameter];
    const dry = await aws.cli('provision-ec2', [...args, '--dry-run']);
    t.equal(dry.code, 0, `dry run exits 0 (${dry.stderr})`);
    t.match(dry.stdout, /kms:Decrypt on alias\/rn-tokens through SSM/, 'the plan says so');
    const run = await aws.cli('provision-ec2', args);
    t.equal(run.code, 0, `exit 0 (${run.stderr})`);
    const policy = await aws.iam.send(
      new GetRolePolicyCommand({ RoleName: `${name}-agent`, PolicyName: 'agent-parameters' }),
    );
    const decrypt = JSON.parse(decodeURIComponent(policy.PolicyDocument ?? '')).Statement.find(
      (s: { Action: string }) => s.Action === 'kms:Decrypt',
    );
    t.same(
      decrypt?.Condition,
      {
        StringEquals: { 'kms:ViaService': 'ssm.us-east-1.amazonaws.com' },
        'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/rn-tokens' },
      },
      'kms:Decrypt on the key the alias names, only when SSM asks (what that allows: aws-iam-policy.test.ts)',
    );

    // The recorded parameter is deleted: a re-run without token flags says so and removes nothing.
    await aws.ssm.send(new DeleteParameterCommand({ Name: parameter }));
    const again = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', name]);
    t.equal(again.code, 0, `a re-run exits 0 (${again.stderr})`);
    t.match(
      again.stdout,
      `API token: none; the role keeps its permission to read ${parameter} from an earlier run, but that parameter is gone`,
      'says the token is gone and the permission stays',
    );
    const kept = await aws.iam.send(
      new GetRolePolicyCommand({ RoleName: `${name}-agent`, PolicyName: 'agent-parameters' }),
    );
    t.equal(kept.PolicyDocument, policy.PolicyDocument, 'the role policy is unchanged');
  },
);

t.test("a re-run stays in the instances' VPC and says what it does not change", async (t) => {
  const name = 'rn-vpc';
  // A VPC of its own, as a first run with --subnet in a non-default VPC uses.
  const { Vpc } = await aws.ec2.send(new CreateVpcCommand({ CidrBlock: '10.7.0.0/16' }));
  const vpcId = Vpc?.VpcId as string;
  const { Subnet } = await aws.ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: '10.7.1.0/24' }));
  const subnet = Subnet?.SubnetId as string;
  const groups = async () =>
    (
      await aws.ec2.send(
        new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: [name] }] }),
      )
    ).SecurityGroups?.map((g) => [g.GroupId, g.VpcId]) ?? [];
  const args = ['--service-url', URL_, '--name', name];
  const first = await aws.cli('provision-ec2', [...args, '--subnet', subnet, '--count', '2']);
  t.equal(first.code, 0, `first run with --subnet exits 0 (${first.stderr})`);
  const made = await groups();
  t.same(
    made.map(([, vpc]) => vpc),
    [vpcId],
    "one group, in the subnet's VPC",
  );
  const instances = (await aws.liveInstances(name)).map((i) => i.InstanceId as string);

  // Without --subnet, with fewer --count and another --instance-type: dry run, then the run.
  const other = [...args, '--count', '1', '--instance-type', 't3.small'];
  const dry = await aws.cli('provision-ec2', [...other, '--dry-run']);
  const run = await aws.cli('provision-ec2', other);
  const countNote = `note: 2 instances exist, more than --count 1: none is removed; remove some with aws ec2 terminate-instances --instance-ids ..., or all with npm run teardown-ec2 -- --name ${name}`;
  const typeNote = `note: ${instances.map((id) => `${id} is t3.micro`).join(', ')}, not t3.small (--instance-type): an instance is not changed in place; to change it, run npm run teardown-ec2 -- --name ${name}, then provision-ec2 again`;
  for (const [what, out] of [
    ['dry run', dry],
    ['run', run],
  ] as const) {
    t.equal(out.code, 0, `${what} without --subnet exits 0 (${out.stderr})`);
    t.match(out.stdout, new RegExp(`✓ VPC: ${vpcId} `), `${what}: the instances' VPC, not the default one`);
    t.match(out.stdout, `\n${countNote}\n`, `${what}: a note on the count, saying how to remove instances`);
    t.match(out.stdout, `\n${typeNote}\n`, `${what}: a note naming the instances of another type`);
  }
  t.match(
    dry.stdout,
    `  security group: reuse ${name} in ${vpcId} (no inbound rules)`,
    'the plan reuses the group',
  );
  t.match(run.stdout, `✓ security group: ${made[0]?.[0]} reused`, 'the run reused it');
  t.same(stepNames(dry.stdout), stepNames(run.stdout), 'the dry run named every step the run reported');
  t.same(await groups(), made, 'no second security group (DescribeSecurityGroups)');
  const after = await aws.liveInstances(name);
  t.same(
    after.map((i) => [i.InstanceId, i.InstanceType]),
    instances.map((id) => [id, 't3.micro']),
    'both instances kept, of their type',
  );

  // More instances without --subnet: the new one goes beside the others.
  const more = await aws.cli('provision-ec2', [...args, '--count', '3']);
  t.equal(more.code, 0, `--count 3 without --subnet exits 0 (${more.stderr})`);
  t.same(
    (await aws.liveInstances(name)).map((i) => i.SubnetId),
    [subnet, subnet, subnet],
    'the launched instance is in the subnet of the others',
  );
  t.same(await groups(), made, 'still one security group');

  // A --subnet in another VPC (the default one): refused before any change, dry or not.
  const defaults = await aws.ec2.send(
    new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }),
  );
  const elsewhere = defaults.Subnets?.[0];
  const before = await aws.snapshot(name);
  const moved = [...args, '--subnet', elsewhere?.SubnetId as string];
  const [refusedDry, refused] = [
    await aws.cli('provision-ec2', [...moved, '--dry-run']),
    await aws.cli('provision-ec2', moved),
  ];
  t.equal(refused.code, 2, 'a --subnet in another VPC than the instances is refused, exit 2');
  t.match(
    refused.stderr,
    new RegExp(
      `^provision-ec2: subnet ${elsewhere?.SubnetId} is in ${elsewhere?.VpcId}, but ${name}'s instance i-\\w+ is in ${vpcId}: run npm run teardown-ec2 -- --name ${name} first, or pass the first run's --subnet ${subnet}\n$`,
    ),
    'in one line saying what differs and what to do',
  );
  t.equal(refusedDry.code, 2, 'the dry run refuses too');
  t.equal(refusedDry.stderr, refused.stderr, 'with the same words');
  t.same(await groups(), made, 'no security group in the other VPC');
  t.same(await aws.snapshot(name), before, 'nothing changed: no instance, no command');
});

t.test('a re-run puts the role back into a profile that lost it', async (t) => {
  const name = 'rn-reattach';
  const profile = { InstanceProfileName: `${name}-agent` };
  const first = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', name]);
  t.equal(first.code, 0, `first run exits 0 (${first.stderr})`);
  // Taken out by hand (or by a teardown stopped midway): the instances would get no credentials.
  await aws.iam.send(new RemoveRoleFromInstanceProfileCommand({ ...profile, RoleName: `${name}-agent` }));
  const again = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', name]);
  t.equal(again.code, 0, `the re-run exits 0 (${again.stderr})`);
  const { InstanceProfile } = await aws.iam.send(new GetInstanceProfileCommand(profile));
  t.same(
    InstanceProfile?.Roles?.map((r) => r.RoleName),
    [`${name}-agent`],
    'the existing profile holds the agent role again',
  );
});

t.test('ec2-results reads the running instances only, not a stopped one', async (t) => {
  const name = 'rn-readrun';
  const first = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', name, '--count', '2']);
  t.equal(first.code, 0, `provision --count 2 exits 0 (${first.stderr})`);
  const [running, stopped] = (await aws.liveInstances(name)).map((i) => i.InstanceId as string);
  await aws.ec2.send(new StopInstancesCommand({ InstanceIds: [stopped as string] }));
  const read = await aws.cli('ec2-results', ['--name', name]);
  t.equal(read.code, 0, `ec2-results exits 0 (${read.stderr})`);
  // What the CLI reports it sent the command to. (Not moto's ListCommands: it adds every instance of the
  // account to a command sent by InstanceIds.)
  t.match(
    read.stdout,
    new RegExp(`✓ read results: command \\S+ on ${running} \\(`),
    `the read command went to the running ${running} alone`,
  );
  t.match(read.stdout, `\n== ${running}\n`, 'and its results are shown');
  t.notMatch(read.stdout, stopped as string, `the stopped ${stopped} is not named anywhere`);
});

t.test("our group in another VPC is not taken for the one the subnet's VPC needs", async (t) => {
  const name = 'rn-twovpc';
  const { Vpc } = await aws.ec2.send(new CreateVpcCommand({ CidrBlock: '10.8.0.0/16' }));
  // As an earlier provision-ec2 with --subnet in that VPC, since torn down but for its group, leaves it.
  const { GroupId: elsewhere } = await aws.ec2.send(
    new CreateSecurityGroupCommand({
      GroupName: name,
      VpcId: Vpc?.VpcId,
      Description: 'ours, in another VPC',
      TagSpecifications: [{ ResourceType: 'security-group', Tags: projectTags(name) }],
    }),
  );
  const defaults = await aws.ec2.send(
    new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }),
  );
  const subnet = defaults.Subnets?.[0];
  const run = await aws.cli('provision-ec2', [
    '--service-url',
    URL_,
    '--name',
    name,
    '--subnet',
    subnet?.SubnetId as string,
  ]);
  t.equal(run.code, 0, `a run with --subnet in the default VPC exits 0 (${run.stderr})`);
  const groups =
    (
      await aws.ec2.send(
        new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: [name] }] }),
      )
    ).SecurityGroups ?? [];
  const made = groups.find((g) => g.GroupId !== elsewhere);
  t.equal(made?.VpcId, subnet?.VpcId, "a group of its own, in the subnet's VPC, beside the other one");
  const [instance] = await aws.liveInstances(name);
  t.same(
    instance?.SecurityGroups?.map((g) => g.GroupId),
    [made?.GroupId],
    'the instance is in that group, not in the one of the other VPC',
  );
});
