import { readFileSync } from 'node:fs';
import { DescribeVolumesCommand, type Instance } from '@aws-sdk/client-ec2';
import { GetRoleCommand, GetRolePolicyCommand, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { GetParameterCommand, ListCommandsCommand } from '@aws-sdk/client-ssm';
import t from 'tap';
import { sha256 } from '../scripts/aws/delivery.ts';
import { noStack, startAwsCli, stepNames, teardownNames } from './helpers/aws-cli.ts';

// The real CLIs as processes, over HTTP against moto_server on a free loopback port: the main path,
// provision → provision again → results → teardown → teardown again. Edge cases: aws-provision-edges.

const { cli, ec2, iam, ssm, liveInstances, taggedGroups, snapshot } = await startAwsCli(t);
const URL_ = 'https://random-number.default.example.com';
const NAME = 'rn-e2e';

// One scenario: each step starts from what the one before left, so they are steps of one test.
t.test('the main path: provision, provision again, results, teardown, teardown again', async (t) => {
  let firstInstanceId = '';

  await t.test(
    'a full run leaves one locked-down instance with the agent sent through Run Command',
    async (t) => {
      const token = 'tok-e2e-7f3a9c-0123456789abcdef012345';
      const args = ['--service-url', URL_, '--name', NAME];
      const before = await snapshot(NAME);
      const dry = await cli('provision-ec2', [...args, '--dry-run'], { API_TOKEN: token });
      t.equal(dry.code, 0, `the dry run first: exit 0 (${dry.stderr})`);
      t.same(await snapshot(NAME), before, 'and nothing changed');
      const run = await cli('provision-ec2', args, { API_TOKEN: token });
      t.equal(run.code, 0, `exit 0 (${run.stderr})`);
      t.notMatch(run.stdout + run.stderr + dry.stdout + dry.stderr, token, 'the token is never printed');
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
      const steps = stepNames(run.stdout);
      t.match(steps.at(-1), /^random-number agent \w{12}: verify and install$/, 'the install is a step');
      t.same(stepNames(dry.stdout), steps, 'the dry run named, in order, every step the run reports');
      t.match(run.stdout, /npm run ec2-results -- --name rn-e2e/, 'says how to read the results');
      t.match(run.stdout, /npm run teardown-ec2 -- --name rn-e2e/, 'says how to tear down');

      const instances = await liveInstances(NAME);
      t.equal(instances.length, 1, 'one instance');
      const instance = instances[0] as Instance;
      firstInstanceId = instance.InstanceId ?? '';
      t.match(
        run.stdout,
        `installed on ${firstInstanceId} in us-east-1`,
        'prints the instance id and region',
      );
      const tags = Object.fromEntries((instance.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
      t.same([tags.Name, tags.Project], [NAME, NAME], 'instance tagged Name and Project');
      t.equal(instance.MetadataOptions?.HttpTokens, 'required', 'IMDSv2 required');
      t.match(
        instance.IamInstanceProfile?.Arn,
        /instance-profile\/random-number\/rn-e2e-agent$/,
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
      t.equal(role.Role?.Path, '/random-number/', 'under the project IAM path the operator policy names');
      t.match(
        role.Role?.PermissionsBoundary?.PermissionsBoundaryArn,
        /^arn:aws:iam::123456789012:policy\/random-number\/random-number-agent-boundary$/,
        'with the permissions boundary',
      );
      const inline = await iam.send(
        new GetRolePolicyCommand({ RoleName: 'rn-e2e-agent', PolicyName: 'agent-parameters' }),
      );
      const policy = JSON.parse(decodeURIComponent(String(inline.PolicyDocument)));
      const tokenArn = 'arn:aws:ssm:us-east-1:123456789012:parameter/random-number/rn-e2e/api-token';
      t.same(
        policy.Statement.map((s: { Effect: string; Resource?: string; NotResource?: string }) => [
          s.Effect,
          s.Resource ?? `not ${s.NotResource}`,
        ]),
        [
          ['Allow', tokenArn],
          ['Deny', `not ${tokenArn}`],
        ],
        'the role may read that one parameter and no other (what that means: aws-iam-policy.test.ts)',
      );

      const parameter = await ssm.send(
        new GetParameterCommand({ Name: '/random-number/rn-e2e/api-token', WithDecryption: true }),
      );
      t.equal(parameter.Parameter?.Type, 'SecureString', 'the token is a SecureString');
      t.equal(parameter.Parameter?.Value, token, 'holding the token');

      const commands = (await ssm.send(new ListCommandsCommand({}))).Commands ?? [];
      const install = commands.filter((c) => c.Comment?.includes('verify and install'));
      t.equal(install.length, 1, 'one install command');
      t.equal(install[0]?.DocumentName, 'AWS-RunShellScript', 'sent as AWS-RunShellScript');
      t.same(
        install[0]?.Targets,
        [
          { Key: 'tag:Project', Values: [NAME] },
          { Key: 'tag:CreatedBy', Values: ['random-number-provision-ec2'] },
        ],
        'targets the instances by both tags',
      );
      const script = install[0]?.Parameters?.commands?.join('\n') ?? '';
      t.match(script, sha256(readFileSync('dist/ec2-agent.mjs')), 'carries the bundle checksum to verify');
      t.match(
        script,
        /install\.sh" --bundle "\$d\/ec2-agent\.mjs" --sha256 \w{64} '--service-url' 'https:\/\/random-number/,
        'runs install.sh with the service URL',
      );
      t.match(
        script,
        "'--api-token-parameter' '/random-number/rn-e2e/api-token'",
        'passes the token parameter name, not the token',
      );
      t.notMatch(script, token, 'the token is not in the command');
      const parts = commands.filter((c) => /part \d+ of \d+/.test(c.Comment ?? ''));
      t.ok(parts.length >= 2, `the bundle went in ${parts.length} part commands`);
    },
  );

  await t.test('a second run reuses everything and re-installs', async (t) => {
    const before = await snapshot(NAME);
    const dry = await cli('provision-ec2', ['--service-url', URL_, '--name', NAME, '--dry-run']);
    t.same(await snapshot(NAME), before, 'the dry run changed nothing');
    t.match(
      dry.stdout,
      `  running: wait for ${firstInstanceId}\n`,
      'the dry run names the instance it reuses',
    );
    const run = await cli('provision-ec2', ['--service-url', URL_, '--name', NAME]);
    t.equal(run.code, 0, `exit 0 (${run.stderr})`);
    t.notOk(stepNames(run.stdout).includes('launch'), 'no launch step');
    t.same(stepNames(dry.stdout), stepNames(run.stdout), 'the dry run named every step the run reports');
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

  await t.test('ec2-results reads through SSM and says plainly there is nothing yet', async (t) => {
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

  await t.test('teardown, after its dry run, removes everything tagged; twice is fine', async (t) => {
    const before = await snapshot(NAME);
    const dry = await cli('teardown-ec2', ['--name', NAME, '--dry-run']);
    t.equal(dry.code, 0, `the dry run first: exit 0 (${dry.stderr})`);
    t.same(await snapshot(NAME), before, 'the dry run removed nothing');
    t.same(
      stepNames(dry.stdout),
      ['credentials', 'instances', 'security group', 'API token parameter', 'IAM role and instance profile'],
      'a line per teardown step, starting with its name (the parameter before the role that records it)',
    );
    const run = await cli('teardown-ec2', ['--name', NAME]);
    t.equal(run.code, 0, `exit 0 (${run.stderr})`);
    t.same(stepNames(run.stdout), stepNames(dry.stdout), 'the teardown reports the same steps');
    t.equal(teardownNames(run.stdout).length, 5, 'instance, security group, profile, role, token parameter');
    t.same(teardownNames(dry.stdout), teardownNames(run.stdout), 'the dry run named exactly what went');
    t.match(run.stdout, `instance ${firstInstanceId}`, 'reports the terminated instance');
    t.match(
      run.stdout,
      /SecureString \/random-number\/rn-e2e\/api-token/,
      'reports the deleted token parameter',
    );
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

    const [again, results, dryAgain] = await Promise.all([
      cli('teardown-ec2', ['--name', NAME]),
      cli('ec2-results', ['--name', NAME]),
      cli('teardown-ec2', ['--name', NAME, '--dry-run']),
    ]);
    t.equal(again.code, 0, 'a second teardown exits 0');
    t.match(again.stdout, /nothing to remove/, 'and says there was nothing to remove');
    t.match(dryAgain.stdout, /^ {2}instances: remove nothing$/m, 'as its dry run did');
    t.same(teardownNames(dryAgain.stdout), [], 'naming nothing');

    t.equal(results.code, 2, 'ec2-results without instances exits 2 (run provision-ec2 first)');
    t.match(
      results.stderr,
      /no running instance tagged Project=rn-e2e: run `npm run provision-ec2/,
      'and says what to do',
    );
    noStack(t, results);
  });
});
