import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CreateSecurityGroupCommand, DescribeSubnetsCommand } from '@aws-sdk/client-ec2';
import {
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
} from '@aws-sdk/client-iam';
import {
  GetParameterCommand,
  ListCommandsCommand,
  ListTagsForResourceCommand,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import t, { type Test } from 'tap';
import { tokenProblem } from '../lib/contract.ts';
import { noStack, type Run, startAwsCli, teardownNames } from './helpers/aws-cli.ts';
import { type CliName, cliBundle } from './helpers/cli-bundle.ts';
import { startMoto } from './helpers/moto.ts';

// The real CLIs as processes against moto_server: bad input, dry run, a fleet, resources not ours.

const { cli, moto, ec2, iam, ssm, liveInstances, exists, snapshot } = await startAwsCli(t);
const TEST_KEYS = { accessKeyId: 'test', secretAccessKey: 'test' };
const URL_ = 'https://random-number.default.example.com';
const NAME = 'rn-e2e';

t.test('without moto_server the harness fails and says how to install it', async (t) => {
  const teardowns: (() => unknown)[] = [];
  await t.rejects(
    startMoto({ teardown: (fn) => teardowns.push(fn) }, { command: 'moto_server-not-installed-here' }),
    { message: "moto_server not found: install it: pip install 'moto[server]'" },
    'a failure naming pip install moto[server], not a skip',
  );
  for (const fn of teardowns) await fn();
});

t.test('missing credentials, region or --service-url give one clear line and exit 2', async (t) => {
  // Independent processes: run side by side to keep the file fast.
  const [noCreds, noRegion, noUrl, unknown, help, badCount, noParameter, badSubnet, noBundle, outside] =
    await Promise.all([
      cli('provision-ec2', ['--service-url', URL_], {
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
      }),
      cli('provision-ec2', ['--service-url', URL_], { AWS_REGION: undefined }),
      cli('provision-ec2', []),
      cli('provision-ec2', ['--service-url', URL_, '--instance-count', '2']),
      cli('provision-ec2', ['--help']),
      cli('provision-ec2', ['--service-url', URL_, '--count', '0']),
      cli('provision-ec2', [
        '--service-url',
        URL_,
        '--name',
        'rn-none',
        '--api-token-parameter',
        '/random-number/rn-none/t',
      ]),
      cli('provision-ec2', ['--service-url', URL_, '--subnet', 'subnet-0000000000', '--dry-run']),
      cli('provision-ec2', ['--service-url', URL_, '--bundle', 'dist/not-built.mjs', '--dry-run']),
      cli('provision-ec2', ['--service-url', URL_, '--api-token-parameter', '/prod/token', '--dry-run']),
    ]);
  t.equal(noCreds.code, 2, 'exit 2 without credentials');
  t.match(
    noCreds.stderr,
    /no AWS credentials found: pass --profile or set AWS_PROFILE .* AWS_ACCESS_KEY_ID/,
    'says what to set',
  );
  noStack(t, noCreds);

  t.equal(noRegion.code, 2, 'exit 2 without a region');
  t.match(noRegion.stderr, /no AWS region: set AWS_REGION/, 'says to set AWS_REGION');
  noStack(t, noRegion);

  t.equal(noUrl.code, 2, 'exit 2 without --service-url');
  t.match(noUrl.stderr, /--service-url is required/, 'names --service-url');
  noStack(t, noUrl);

  t.equal(unknown.code, 2, 'exit 2 for an unknown flag');
  t.match(unknown.stderr, /Unknown option '--instance-count'.*see --help/, 'names the unknown flag');

  t.equal(help.code, 0, '--help exits 0');
  t.match(help.stdout, /--service-url URL/, '--help lists the flags');

  const badType = await cli('provision-ec2', ['--service-url', URL_, '--instance-type', 'large']);
  t.equal(badType.code, 2, 'exit 2 for an --instance-type that is none');
  t.equal(
    badType.stderr,
    'provision-ec2: --instance-type must look like t3.micro (got "large")\n',
    'says so',
  );

  t.equal(badCount.code, 2, 'exit 2 for --count 0');
  t.match(badCount.stderr, /--count must be a whole number from 1 to 50 \(got "0"\)/, 'says what is allowed');

  t.equal(noBundle.code, 2, 'exit 2 without the built agent');
  t.match(
    noBundle.stderr,
    /cannot read \/\S*\/dist\/not-built\.mjs: build the agent first with `npm run build`/,
    'names the file (absolute) and says to build',
  );

  t.equal(badSubnet.code, 2, 'exit 2 for a subnet that does not exist');
  t.match(badSubnet.stderr, /--subnet subnet-0000000000: no such subnet in this region/, 'names the subnet');

  t.equal(outside.code, 2, 'exit 2 for a token parameter outside /random-number/');
  t.match(
    outside.stderr,
    /^provision-ec2: --api-token-parameter "\/prod\/token" must be under \/random-number\/ \(the operator policy and the agent role's permissions boundary allow no other parameter\)/,
    'says where it must be, and why',
  );
  noStack(t, outside);

  t.equal(noParameter.code, 2, 'exit 2 for a token parameter that does not exist');
  t.match(
    noParameter.stderr,
    /\/random-number\/rn-none\/t does not exist: pass --api-token \(or set API_TOKEN\)/,
    'says how to create it',
  );
  t.same(
    await snapshot('rn-none').then(({ commands: _, ...rest }) => rest),
    { instances: 0, groups: 0, role: false, profile: false, token: false },
    'and nothing was created before that check',
  );
});

t.test(
  'flags npm took as its own (no `--`) are refused before anything: exit 2, nothing touched',
  async (t) => {
    // The default deployment, which a bare `npm run teardown-ec2` would remove.
    const up = await cli('provision-ec2', ['--service-url', URL_]);
    t.equal(up.code, 0, `the default deployment is up (${up.stderr})`);
    const before = await Promise.all([snapshot('random-number'), snapshot('rn-npm')]);
    // npm sets npm_lifecycle_event to the script it runs; the bundles get what npm would export.
    const npmEnv = (script: string, config: Record<string, string>) => ({
      npm_lifecycle_event: script,
      ...Object.fromEntries(Object.entries(config).map(([k, v]) => [`npm_config_${k}`, v])),
    });
    const [teardown, provision, token, results, command, bootstrap] = await Promise.all([
      // Exactly as a user types it: `npm run teardown-ec2 --name rn-npm --dry-run`.
      cli('teardown-ec2', [], {}, { via: 'npm', npmFlags: ['--name', 'rn-npm', '--dry-run'] }),
      cli(
        'provision-ec2',
        [],
        npmEnv('provision-ec2', { service_url: URL_, name: 'rn-npm', schedule: '*/5 * * * *' }),
      ),
      cli('provision-ec2', ['--service-url', URL_], npmEnv('provision-ec2', { api_token: 'a'.repeat(40) })),
      cli('ec2-results', [], npmEnv('ec2-results', { output_file: '/root/n.txt' })),
      cli('agent-command', ['--service-url', URL_], npmEnv('agent-command', { out: 'x' })),
      cli('iam-bootstrap', [], npmEnv('iam-bootstrap', { profile: 'admin' })),
    ]);
    const expected: [Run, string][] = [
      [
        teardown,
        "teardown-ec2: npm took --dry-run, --name as its own settings and did not pass them on: put the flags after --, e.g. npm run teardown-ec2 -- --dry-run --name 'rn-npm'",
      ],
      [
        provision,
        `provision-ec2: npm took --service-url, --schedule, --name as its own settings and did not pass them on: put the flags after --, e.g. npm run provision-ec2 -- --service-url '${URL_}' --schedule '*/5 * * * *' --name 'rn-npm'`,
      ],
      [
        token,
        'provision-ec2: npm took --api-token as its own settings and did not pass them on: put the flags after --, e.g. npm run provision-ec2 -- --api-token TOKEN',
      ],
      [
        results,
        "ec2-results: npm took --output-file as its own settings and did not pass them on: put the flags after --, e.g. npm run ec2-results -- --output-file '/root/n.txt'",
      ],
      [
        command,
        "agent-command: npm took --out as its own settings and did not pass them on: put the flags after --, e.g. npm run agent-command -- --out 'x'",
      ],
      [
        bootstrap,
        "iam-bootstrap: npm took --profile as its own settings and did not pass them on: put the flags after --, e.g. npm run iam-bootstrap -- --profile 'admin'",
      ],
    ];
    for (const [run, line] of expected) {
      const what = line.slice(0, line.indexOf(':'));
      t.equal(run.code, 2, `${what}: exit 2`);
      t.equal(run.stderr, `${line}\n`, `${what}: one line naming the flags and the fix`);
      t.notMatch(run.stdout, /✓/, `${what}: before any step`);
    }
    t.notMatch(token.stderr, /a{40}/, 'the token itself is not printed');
    t.same(
      await Promise.all([snapshot('random-number'), snapshot('rn-npm')]),
      before,
      'the default deployment is untouched and nothing was made for the name npm took',
    );
    const down = await cli('teardown-ec2', []);
    t.equal(down.code, 0, `the default deployment goes with teardown-ec2 itself (${down.stderr})`);
  },
);

t.test('an empty flag value is refused, not taken for the default: exit 2, nothing made', async (t) => {
  const before = await snapshot('rn-empty');
  const args = ['--service-url', URL_, '--name', 'rn-empty'];
  const cases: [CliName, string[], string][] = [
    // `--subnet "$SUBNET"` with SUBNET unset: a real run, which would launch into the default VPC.
    ['provision-ec2', [...args, '--subnet', ''], 'subnet'],
    ['provision-ec2', [...args, '--api-token', '', '--dry-run'], 'api-token'],
    ['provision-ec2', [...args, '--region', '', '--dry-run'], 'region'],
    ['provision-ec2', [...args, '--api-token-parameter', '', '--dry-run'], 'api-token-parameter'],
    ['provision-ec2', [...args, '--output-file', '', '--dry-run'], 'output-file'],
    ['provision-ec2', [...args, '--schedule', ' ', '--dry-run'], 'schedule'],
    ['provision-ec2', [...args, '--request-timeout-ms=', '--dry-run'], 'request-timeout-ms'],
    ['provision-ec2', [...args, '--ca-cert', '', '--dry-run'], 'ca-cert'],
    ['teardown-ec2', ['--name', 'rn-empty', '--profile', ''], 'profile'],
    ['ec2-results', ['--output-file', ''], 'output-file'],
    ['agent-command', ['--service-url', URL_, '--out', ''], 'out'],
    ['iam-bootstrap', ['--region', '\t'], 'region'],
  ];
  const runs = await Promise.all(cases.map(([script, argv]) => cli(script, argv)));
  for (const [index, [script, , flag]] of cases.entries()) {
    const run = runs[index] as Run;
    t.equal(run.code, 2, `${script} --${flag} '': exit 2`);
    t.equal(
      run.stderr,
      `${script}: --${flag} is empty: give it a value, or leave the flag out for its default\n`,
      `${script} --${flag} '': one line naming the flag`,
    );
  }
  t.same(await snapshot('rn-empty'), before, 'nothing was created or sent');
  // Values that mean something stay as they were: --ca-cert none removes the installed CA.
  const none = await cli('provision-ec2', [...args, '--ca-cert', 'none', '--dry-run']);
  t.equal(none.code, 0, `--ca-cert none still works (${none.stderr})`);
  t.match(none.stdout, /agent CA: removed: the agent trusts the public CAs only/, 'and means remove');
});

t.test("ec2-results checks --output-file with the agent's own rule, before any AWS call", async (t) => {
  for (const path of ['numbers.txt', '/proc/self/n.txt', '/root/../etc/n.txt', '/root/n.txt:']) {
    const run = await cli('ec2-results', ['--output-file', path], { AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    t.equal(run.code, 2, `${path}: exit 2`);
    t.match(
      run.stderr,
      /^ec2-results: --output-file must be an absolute file path of letters, digits and \._-\/ without \.\./,
      `${path}: the agent's words, not an SSM read of a file no agent could have`,
    );
    t.notMatch(run.stderr, /AWS did not answer/, `${path}: refused before any AWS call`);
  }
});

t.test('a line break in an agent setting is refused by the CLIs, before anything is sent', async (t) => {
  const before = await snapshot('rn-crlf');
  // `--service-url "$(cat url.txt)"` from a file with CRLF line ends: the URL parser would drop the \r,
  // and only install.sh's check on the instance would refuse it, after every part was sent.
  const args = ['--name', 'rn-crlf'];
  const [url, schedule, command] = await Promise.all([
    cli('provision-ec2', [...args, '--service-url', `${URL_}\r`]),
    cli('provision-ec2', [...args, '--service-url', URL_, '--schedule', '*/5 * * * *\r']),
    cli('agent-command', ['--service-url', URL_, '--schedule', '* * * * *\n']),
  ]);
  for (const [run, line] of [
    [url, 'provision-ec2: invalid configuration: --service-url must be on one line'],
    [schedule, 'provision-ec2: invalid configuration: --schedule must be on one line'],
    [command, 'agent-command: invalid configuration: --schedule must be on one line'],
  ] as const) {
    t.equal(run.code, 2, `${line.split(':')[0]}: exit 2`);
    t.equal(run.stderr, `${line}\n`, `${line.split(':')[0]}: one line naming the flag`);
  }
  t.same(await snapshot('rn-crlf'), before, 'nothing was created or sent');
});

t.test('dry run prints the plan and changes nothing', async (t) => {
  const before = await snapshot(NAME);
  const [run, arm] = await Promise.all([
    // As a user runs it: `npm run provision-ec2 --` (tsx on the sources); the other runs use the bundle.
    cli(
      'provision-ec2',
      ['--service-url', URL_, '--name', NAME, '--dry-run'],
      { API_TOKEN: 'dry-0123456789abcdef0123456789abcdef' },
      { via: 'npm' },
    ),
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
  t.equal(run.code, 0, `npm run provision-ec2 -- --dry-run exits 0 (${run.stderr})`);
  t.match(run.stdout, /dry run: nothing was changed/, 'says nothing changed');
  t.match(
    run.stdout,
    /^ {2}IAM role and instance profile: create IAM role rn-e2e-agent .*, create instance profile$/m,
    'plans the role and the profile',
  );
  t.match(
    run.stdout,
    /^ {2}security group: create rn-e2e in vpc-\w+ \(no inbound rules\)$/m,
    'plans the security group',
  );
  t.match(
    run.stdout,
    /^ {2}launch: create 1 instance t3\.micro from ami-\w+, IMDSv2 required, encrypted gp3/m,
    'plans the instance',
  );
  t.match(
    run.stdout,
    /^ {2}API token: create SecureString \/random-number\/rn-e2e\/api-token$/m,
    'plans the token parameter',
  );
  t.same(await snapshot(NAME), before, 'moto state is unchanged');

  t.match(arm.stdout, /Amazon Linux 2023 arm64/, 'a Graviton type gets the arm64 AMI');
});

t.test(
  'a fleet gets one command per step; a token parameter made by the user survives teardown',
  async (t) => {
    const name = 'rn-fleet';
    await ssm.send(
      new PutParameterCommand({
        Name: '/random-number/shared/token',
        Value: 'users-own',
        Type: 'SecureString',
      }),
    );
    const before = (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0;
    const subnets = await ec2.send(
      new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }),
    );
    const subnet = subnets.Subnets?.at(-1)?.SubnetId as string;
    const run = await cli('provision-ec2', [
      '--service-url',
      URL_,
      '--name',
      name,
      '--count',
      '2',
      '--api-token-parameter',
      '/random-number/shared/token',
      '--subnet',
      subnet,
    ]);
    t.equal(run.code, 0, `exit 0 (${run.stderr})`);
    t.same(
      (await liveInstances(name)).map((i) => i.SubnetId),
      [subnet, subnet],
      'both instances in the --subnet given',
    );
    t.equal((await liveInstances(name)).length, 2, 'two instances');
    for (const instance of await liveInstances(name)) {
      const { HttpTokens, HttpPutResponseHopLimit } = instance.MetadataOptions ?? {};
      t.same(
        { HttpTokens, HttpPutResponseHopLimit },
        { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
        `${instance.InstanceId}: IMDSv2 required, hop limit 1 (no container on it can reach the role's credentials)`,
      );
    }
    const sent = ((await ssm.send(new ListCommandsCommand({}))).Commands ?? []).slice(before);
    const installs = sent.filter((c) => c.Comment?.includes('verify and install'));
    t.equal(installs.length, 1, 'one install command for the whole fleet');
    t.equal(installs[0]?.TargetCount, 2, 'reaching both instances');
    t.equal(installs[0]?.MaxErrors, '0', 'MaxErrors set');
    t.equal(installs[0]?.MaxConcurrency, '100%', 'MaxConcurrency set');

    // No --api-token-parameter: teardown reads the parameter the role records.
    const down = await cli('teardown-ec2', ['--name', name]);
    t.equal(down.code, 0, `teardown exits 0 (${down.stderr})`);
    t.match(
      down.stdout,
      /\/random-number\/shared\/token kept \(not created by provision-ec2\)/,
      'checks the parameter recorded on the role, and keeps it',
    );
    const kept = await ssm.send(
      new GetParameterCommand({ Name: '/random-number/shared/token', WithDecryption: true }),
    );
    t.equal(kept.Parameter?.Value, 'users-own', 'the user-made parameter is still there');
    const tags = await ssm.send(
      new ListTagsForResourceCommand({
        ResourceType: 'Parameter',
        ResourceId: '/random-number/shared/token',
      }),
    );
    t.same(tags.TagList ?? [], [], 'and was not tagged by us');
    t.equal((await liveInstances(name)).length, 0, 'the fleet is gone');
  },
);

t.test('a token switched with --api-token-parameter: teardown removes the old and the new one', async (t) => {
  // docs/ec2.md's way to switch tokens leaves two parameters provision-ec2 made: the default one, which
  // the role no longer records, and the new one, which it does. Teardown must find both, in one run.
  const name = 'rn-switch';
  const [first, rotated] = [`/random-number/${name}/api-token`, `/random-number/${name}/rotated`];
  const provision = (token: string, extra: string[] = []) =>
    cli('provision-ec2', ['--service-url', URL_, '--name', name, ...extra], { API_TOKEN: token });
  const one = await provision('a'.repeat(32));
  t.equal(one.code, 0, `first provision exits 0 (${one.stderr})`);
  const two = await provision('b'.repeat(32), ['--api-token-parameter', rotated]);
  t.equal(two.code, 0, `the switch exits 0 (${two.stderr})`);
  t.match(two.stdout, `SecureString ${rotated} created`, 'the new parameter was made');

  const dry = await cli('teardown-ec2', ['--name', name, '--dry-run']);
  t.equal(dry.code, 0, `the dry run exits 0 (${dry.stderr})`);
  t.match(
    dry.stdout,
    `  API token parameter: remove SecureString ${rotated}, SecureString ${first}`,
    'the dry run names both parameters (the recorded one first)',
  );
  const down = await cli('teardown-ec2', ['--name', name]);
  t.equal(down.code, 0, `teardown exits 0 (${down.stderr})`);
  t.match(down.stdout, /^removed 6:$/m, 'instance, security group, both parameters, profile, role');
  t.same(teardownNames(dry.stdout), teardownNames(down.stdout), 'the dry run named exactly what went');
  for (const parameter of [first, rotated]) {
    t.notOk(await exists(ssm.send(new GetParameterCommand({ Name: parameter }))), `${parameter} is gone`);
  }
  const again = await cli('teardown-ec2', ['--name', name]);
  t.match(again.stdout, `nothing to remove: no resources of ${name} were found`, 'a rerun finds nothing');
});

t.test('a same-named role that is not ours is neither used nor deleted', async (t) => {
  await iam.send(
    new CreateRoleCommand({
      RoleName: 'rn-foreign-agent',
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }),
    }),
  );
  const run = await cli('provision-ec2', ['--service-url', URL_, '--name', 'rn-foreign']);
  t.equal(run.code, 1, 'provisioning stops');
  t.match(
    run.stderr,
    /^provision-ec2: IAM role rn-foreign-agent exists \(arn:aws:iam::123456789012:role\/rn-foreign-agent\) but is not tagged Project=rn-foreign under path \/random-number\/: it is not one provision-ec2 made/,
    'and says why, in its own words (no error class before them)',
  );
  t.equal((await liveInstances('rn-foreign')).length, 0, 'no instance was launched');
  const dry = await cli('provision-ec2', ['--service-url', URL_, '--name', 'rn-foreign', '--dry-run']);
  t.equal(dry.code, 1, 'the dry run stops where the run stops');
  t.equal(dry.stderr, run.stderr, 'with the same words');
  const [down, dryDown] = await Promise.all([
    cli('teardown-ec2', ['--name', 'rn-foreign']),
    cli('teardown-ec2', ['--name', 'rn-foreign', '--dry-run']),
  ]);
  t.equal(down.code, 0, `teardown exits 0 (${down.stderr})`);
  for (const [what, out] of [
    ['teardown', down],
    ['its dry run', dryDown],
  ] as const) {
    t.match(
      out.stdout,
      /IAM role and instance profile: IAM role rn-foreign-agent exists .* not tagged Project=rn-foreign under path \/random-number\/: it is not one provision-ec2 made; both kept/,
      `${what} says it keeps it, and why`,
    );
    t.match(out.stdout, /IAM role and instance profile: (remove )?nothing/, `${what} removes neither`);
  }
  t.ok(
    await exists(iam.send(new GetRoleCommand({ RoleName: 'rn-foreign-agent' }))),
    'the role is still there',
  );
});

t.test('a token parameter tagged Project=<name> but not CreatedBy by us survives teardown', async (t) => {
  // A user's own parameter at the default name, tagged for the project by hand: only both tags make it ours.
  const parameter = '/random-number/rn-usertag/api-token';
  await ssm.send(
    new PutParameterCommand({
      Name: parameter,
      Value: 'users-own',
      Type: 'SecureString',
      Tags: [{ Key: 'Project', Value: 'rn-usertag' }],
    }),
  );
  const down = await cli('teardown-ec2', ['--name', 'rn-usertag']);
  t.equal(down.code, 0, `teardown exits 0 (${down.stderr})`);
  t.match(
    down.stdout,
    `API token parameter: ${parameter} kept (not created by provision-ec2)`,
    'says it keeps the parameter, and why',
  );
  const kept = await ssm.send(new GetParameterCommand({ Name: parameter, WithDecryption: true }));
  t.equal(kept.Parameter?.Value, 'users-own', 'the parameter is still there, its value untouched');
});

t.test('a role named like ours, tagged Project=<name>, on another path is not ours', async (t) => {
  // Everything but the path is as provision-ec2 makes it, the permissions boundary included.
  await iam.send(
    new CreateRoleCommand({
      RoleName: 'rn-path-agent',
      Path: '/other/',
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }),
      PermissionsBoundary: 'arn:aws:iam::123456789012:policy/random-number/random-number-agent-boundary',
      Tags: [
        { Key: 'Project', Value: 'rn-path' },
        { Key: 'CreatedBy', Value: 'random-number-provision-ec2' },
      ],
    }),
  );
  const run = await cli('provision-ec2', ['--service-url', URL_, '--name', 'rn-path']);
  t.equal(run.code, 1, 'provisioning stops');
  t.match(
    run.stderr,
    /^provision-ec2: IAM role rn-path-agent exists \(arn:aws:iam::123456789012:role\/other\/rn-path-agent\) but is not tagged Project=rn-path under path \/random-number\/: it is not one provision-ec2 made; choose another --name\n$/,
    'refused in one line naming the role, its ARN with the path, and the path it should have',
  );
  t.equal((await liveInstances('rn-path')).length, 0, 'no instance was launched');
  const down = await cli('teardown-ec2', ['--name', 'rn-path']);
  t.equal(down.code, 0, `teardown exits 0 (${down.stderr})`);
  t.match(
    down.stdout,
    /IAM role and instance profile: IAM role rn-path-agent exists .* under path \/random-number\/: it is not one provision-ec2 made; both kept/,
    'teardown says it keeps the role, and why',
  );
  const kept = await iam.send(new GetRoleCommand({ RoleName: 'rn-path-agent' }));
  t.equal(kept.Role?.Path, '/other/', 'the role is still there, on its own path');
});

t.test('an instance profile named like ours at the root path is not ours', async (t) => {
  // No role yet: the profile alone, someone else's at path /, must stop the run.
  await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: 'rn-ppath-agent' }));
  const run = await cli('provision-ec2', ['--service-url', URL_, '--name', 'rn-ppath']);
  t.equal(run.code, 1, 'provisioning stops');
  t.match(
    run.stderr,
    /^provision-ec2: instance profile rn-ppath-agent exists \(arn:aws:iam::123456789012:instance-profile\/rn-ppath-agent\) but not under path \/random-number\/: it is not one provision-ec2 made; choose another --name\n$/,
    'refused in one line naming the profile, its ARN and the path it should have',
  );
  t.equal((await liveInstances('rn-ppath')).length, 0, 'no instance was launched');
  const down = await cli('teardown-ec2', ['--name', 'rn-ppath']);
  t.equal(down.code, 0, `teardown exits 0 (${down.stderr})`);
  t.match(
    down.stdout,
    /IAM role and instance profile: instance profile rn-ppath-agent exists .* not under path \/random-number\/: it is not one provision-ec2 made; both kept/,
    'teardown says it keeps the profile, and why',
  );
  const kept = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: 'rn-ppath-agent' }));
  t.equal(kept.InstanceProfile?.Path, '/', 'the profile is still there, at its own path');
});

t.test('a role of ours without the permissions boundary is refused with what to do', async (t) => {
  await iam.send(
    new CreateRoleCommand({
      RoleName: 'rn-unbounded-agent',
      Path: '/random-number/',
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }),
      Tags: [{ Key: 'Project', Value: 'rn-unbounded' }],
    }),
  );
  const before = await snapshot('rn-unbounded');
  const args = ['--service-url', URL_, '--name', 'rn-unbounded'];
  const token = { API_TOKEN: 'a'.repeat(40) };
  const run = await cli('provision-ec2', args, token);
  t.equal(run.code, 1, 'provisioning stops');
  t.match(
    run.stderr,
    /IAM role rn-unbounded-agent has no permissions boundary, so the operator policy may not change it: an administrator adds it \(aws iam put-role-permissions-boundary --role-name rn-unbounded-agent --permissions-boundary arn:aws:iam::123456789012:policy\/random-number\/random-number-agent-boundary\) or deletes the role; then run again/,
    'says why and what to do',
  );
  noStack(t, run);
  t.same(await snapshot('rn-unbounded'), before, 'before the first change: no token parameter, nothing made');
  const dry = await cli('provision-ec2', [...args, '--dry-run'], token);
  t.equal(dry.code, 1, 'the dry run stops there too, rather than planning to reuse the role');
  t.equal(dry.stderr, run.stderr, 'with the same words');
});

t.test('a same-named security group that is not ours stops the run before the first change', async (t) => {
  const [subnet] = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
  await ec2.send(
    new CreateSecurityGroupCommand({
      GroupName: 'rn-sgforeign',
      Description: 'not ours',
      VpcId: subnet?.VpcId,
    }),
  );
  const before = await snapshot('rn-sgforeign');
  const args = ['--service-url', URL_, '--name', 'rn-sgforeign'];
  const token = { API_TOKEN: 'a'.repeat(40) };
  const [run, dry] = [
    await cli('provision-ec2', args, token),
    await cli('provision-ec2', [...args, '--dry-run'], token),
  ];
  t.equal(run.code, 1, 'provisioning stops');
  t.match(
    run.stderr,
    /^provision-ec2: security group "rn-sgforeign" \(sg-\w+\) exists but is not tagged Project=rn-sgforeign: it is not ours; choose another --name\n$/,
    'in one line saying why and what to do',
  );
  t.same(await snapshot('rn-sgforeign'), before, 'no token parameter, role or profile was made first');
  t.equal(dry.code, 1, 'the dry run stops there too');
  t.equal(dry.stderr, run.stderr, 'with the same words');
});

t.test('a token the agent would refuse is refused before any AWS call, exit 2', async (t) => {
  const before = await snapshot('rn-badtok');
  const args = ['--service-url', URL_, '--name', 'rn-badtok'];
  const [flagged, fromEnv, noCreds, good] = await Promise.all([
    cli('provision-ec2', [...args, '--api-token', 'bad token']),
    cli('provision-ec2', args, { API_TOKEN: 'bad token' }),
    // No credentials at all: the token is still what is reported, so no AWS call came first.
    cli('provision-ec2', [...args, '--api-token', 'bad token'], {
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
    }),
    cli('provision-ec2', [...args, '--api-token', 'a'.repeat(40), '--dry-run']),
  ]);
  for (const [run, what] of [
    [flagged, '--api-token'],
    [fromEnv, 'API_TOKEN'],
    [noCreds, '--api-token'],
  ] as const) {
    t.equal(run.code, 2, `${what}: exit 2`);
    t.equal(
      run.stderr,
      `provision-ec2: ${tokenProblem(what, 'bad token')}\n`,
      `${what}: the one line of the rule in lib/contract.ts`,
    );
    t.notMatch(run.stdout + run.stderr, /bad token/, `${what}: the token itself is never printed`);
  }
  t.match(noCreds.stderr, /--api-token must be a Bearer token/, 'reported before the missing credentials');
  const token = ['--api-token', 'a'.repeat(40), '--name', 'rn-badtok'];
  const [clear, allowed] = await Promise.all([
    cli('provision-ec2', ['--service-url', 'http://x.example/', ...token], { AWS_REGION: undefined }),
    cli('provision-ec2', ['--service-url', 'http://x.example/', ...token, '--allow-plain-http', '--dry-run']),
  ]);
  t.equal(
    clear.code,
    2,
    'a token with an http:// service URL: exit 2, before any AWS call (no region needed)',
  );
  t.match(clear.stderr, /--allow-plain-http/, 'naming the flag that accepts it');
  t.equal(allowed.code, 0, 'with --allow-plain-http the plan goes ahead');
  t.equal(good.code, 0, 'a token of the alphabet passes the same check (dry run)');
  t.same(await snapshot('rn-badtok'), before, 'nothing was created or sent');
});

t.test(
  '--api-token with --api-token-parameter fills that parameter; no command carries the token',
  async (t) => {
    const token = 'pair-0123456789abcdef0123456789abcdef';
    const parameter = '/random-number/rn-pair/own';
    const before = (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0;
    // As --help says, and as API_TOKEN with --api-token-parameter does; then --api-token alone.
    const flags = ['--service-url', URL_, '--name', 'rn-pair', '--api-token', token];
    const paired = await cli('provision-ec2', [...flags, '--api-token-parameter', parameter]);
    t.equal(paired.code, 0, `the pair: exit 0 (${paired.stderr})`);
    const alone = await cli('provision-ec2', [...flags, '--name', 'rn-alone']);
    t.equal(alone.code, 0, `--api-token alone: exit 0 (${alone.stderr})`);
    const sent = ((await ssm.send(new ListCommandsCommand({}))).Commands ?? []).slice(before);
    t.ok(sent.length > 0, `${sent.length} commands sent`);
    t.notMatch(JSON.stringify(sent), token, 'the token is in no command (SSM keeps their history)');
    t.notMatch(JSON.stringify(sent), /--api-token'/, 'nor is an --api-token flag handed to install.sh');
    for (const [name, what] of [
      [parameter, 'the named parameter'],
      ['/random-number/rn-alone/api-token', 'the default parameter'],
    ]) {
      const got = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      t.equal(got.Parameter?.Value, token, `${what} holds the token`);
    }
    for (const name of ['rn-pair', 'rn-alone'])
      t.equal((await cli('teardown-ec2', ['--name', name])).code, 0);
  },
);

/** An AWS config and credentials file with one profile (region eu-west-1), and nothing else to go on. */
function profileEnv(t: Test, profile: string) {
  const dir = t.testdir({
    config: `[profile ${profile}]\nregion = eu-west-1\n`,
    credentials: `[${profile}]\naws_access_key_id = test\naws_secret_access_key = test\n`,
  });
  return {
    AWS_CONFIG_FILE: join(dir, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
    AWS_ACCESS_KEY_ID: undefined,
    AWS_SECRET_ACCESS_KEY: undefined,
    AWS_REGION: undefined,
  };
}

t.test(
  '--profile and AWS_PROFILE take credentials and region from a profile, as the AWS CLI does',
  async (t) => {
    const files = profileEnv(t, 'rn-try');
    const profile = ['--profile', 'rn-try', '--name', 'rn-prof'];
    const [provision, results, teardown, bootstrap, fromEnv, unknown] = await Promise.all([
      cli('provision-ec2', ['--service-url', URL_, ...profile, '--dry-run'], files),
      cli('ec2-results', profile, files),
      cli('teardown-ec2', profile, files),
      cli('iam-bootstrap', ['--profile', 'rn-try'], files),
      cli('ec2-results', ['--name', 'rn-prof'], { ...files, AWS_PROFILE: 'rn-try' }),
      cli('ec2-results', ['--profile', 'nope', '--name', 'rn-prof'], files),
    ]);
    for (const [run, what] of [
      [provision, 'provision-ec2 --profile'],
      [teardown, 'teardown-ec2 --profile'],
    ] as const) {
      t.match(run.stdout, /✓ credentials: \S+ in eu-west-1/, `${what}: the profile's region and keys`);
      t.equal(run.code, 0, `${what}: exit 0`);
    }
    for (const [run, what] of [
      [results, 'ec2-results --profile'],
      [fromEnv, 'ec2-results with AWS_PROFILE'],
    ] as const) {
      t.match(run.stdout, /✓ credentials: \S+ in eu-west-1/, `${what}: the profile's region and keys`);
      t.match(run.stderr, /no running instance tagged Project=rn-prof/, `${what}: then looks there`);
      t.equal(run.code, 2, `${what}: exit 2, none there (run provision-ec2 first)`);
    }
    t.equal(bootstrap.code, 0, 'iam-bootstrap --profile: exit 0');
    t.equal(unknown.code, 2, 'a profile that does not exist: exit 2');
    t.match(
      unknown.stderr,
      /^ec2-results: no AWS region \(profile nope has none, or does not exist\)/,
      'names the profile',
    );
    t.equal(unknown.stderr.trimEnd().split('\n').length, 1, 'in one line');
    const withRegion = await cli('ec2-results', ['--profile', 'nope', '--region', 'eu-west-1'], files);
    t.equal(withRegion.code, 2, 'a profile that does not exist, region given: exit 2');
    t.match(
      withRegion.stderr,
      /^ec2-results: no AWS credentials found for profile nope \(missing, or without keys: /,
      'says the profile may be missing, not only to pass --profile',
    );
  },
);

t.test('the results and teardown commands provision-ec2 prints at the end work as printed', async (t) => {
  // A profile carries the credentials and the region: without --profile the printed commands find neither.
  const env = profileEnv(t, 'rn-print');
  const file = '/var/tmp/numbers.txt';
  const given = ['--service-url', URL_, '--name', 'rn-print', '--profile', 'rn-print', '--output-file', file];
  const up = await cli('provision-ec2', given, env);
  t.equal(up.code, 0, `provisioned (${up.stderr})`);
  const printed = (label: string, script: CliName) => {
    const match = new RegExp(`^ {2}${label}: +npm run ${script} -- (.+?)(?: {3}\\(.*)?$`, 'm').exec(
      up.stdout,
    );
    // As a shell reads them when pasted: split into words, quotes removed.
    const words = match ? execFileSync('sh', ['-c', `printf '%s\\n' ${match[1]}`], { encoding: 'utf8' }) : '';
    return words.trimEnd().split('\n');
  };
  const results = printed('results', 'ec2-results');
  t.same(
    results,
    ['--name', 'rn-print', '--profile', 'rn-print', '--output-file', file],
    'results: the name, the profile and the output file are repeated',
  );
  const read = await cli('ec2-results', results, env);
  t.equal(read.code, 0, `ec2-results as printed: exit 0 (${read.stderr})`);
  const ssm = new SSMClient({ region: 'eu-west-1', endpoint: moto.endpoint, credentials: TEST_KEYS });
  const commands = (await ssm.send(new ListCommandsCommand({}))).Commands ?? [];
  const reads = commands.filter((c) => c.Comment === 'random-number agent: read results');
  t.match(
    reads.at(-1)?.Parameters?.commands?.join('\n'),
    `f='${file}'`,
    'and reads the file the agent writes',
  );
  const down = await cli('teardown-ec2', printed('teardown', 'teardown-ec2'), env);
  t.equal(down.code, 0, `teardown-ec2 as printed: exit 0 (${down.stderr})`);
  t.match(down.stdout, /✓ credentials: \S+ in eu-west-1/, 'in the region of the profile');
  t.equal(teardownNames(down.stdout).length, 4, 'and removes the instance, group, profile and role');
});

t.test('setup errors are one stderr line, without the SDK Node version warning', async (t) => {
  // NODE_NO_WARNINGS removed: a user's shell does not set it.
  const before = await snapshot('rn-sched');
  const [noRegion, control, badSchedule, agentBadSchedule] = await Promise.all([
    cli('provision-ec2', ['--service-url', 'https://x.test'], {
      AWS_REGION: undefined,
      NODE_NO_WARNINGS: undefined,
    }),
    cli('provision-ec2', ['--service-url', 'https://x.test'], {
      AWS_REGION: undefined,
      NODE_NO_WARNINGS: undefined,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'false',
    }),
    cli('provision-ec2', ['--service-url', URL_, '--name', 'rn-sched', '--schedule', '99 * * * *']),
    // agent-command has no --poll-interval-ms (which aws.cli appends): run its bundle directly.
    (async () => {
      const child = spawn(
        process.execPath,
        [
          await cliBundle('agent-command'),
          '--service-url',
          URL_,
          '--schedule',
          '99 * * * *',
          '--out',
          '/nonexistent/x',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d;
      });
      const [code] = await once(child, 'close');
      return { code: code as number | null, stderr };
    })(),
  ]);
  t.equal(noRegion.code, 2, 'exit 2 without a region');
  t.match(noRegion.stderr, /^provision-ec2: no AWS region: set AWS_REGION/, 'says what to set');
  t.equal(noRegion.stderr.trimEnd().split('\n').length, 1, `stderr is exactly one line:\n${noRegion.stderr}`);
  if (Number(process.versions.node.split('.')[0]) < 22) {
    t.match(
      control.stderr,
      /NodeVersionSupportWarning/,
      'control: the SDK does print its warning when the user asks for it (so the test above can fail)',
    );
  }

  t.equal(badSchedule.code, 2, 'provision-ec2 refuses --schedule 99 * * * *');
  t.match(
    badSchedule.stderr,
    /--schedule must be a cron expression.*expected range 0-59.*\(got "99 \* \* \* \*"\)/,
    'says which value and why',
  );
  t.equal(badSchedule.stderr.trimEnd().split('\n').length, 1, 'in one line');
  noStack(t, badSchedule);
  t.same(
    await snapshot('rn-sched'),
    { instances: 0, groups: 0, role: false, profile: false, token: false, commands: before.commands },
    'nothing was created or sent',
  );
  t.equal(agentBadSchedule.code, 2, 'agent-command refuses it too');
  t.match(agentBadSchedule.stderr, /--schedule must be a cron expression/, 'with the same message');
});

t.test('DEBUG=1 adds the stack to an unexpected error only; a known one stays its line', async (t) => {
  const down = { AWS_ENDPOINT_URL: 'http://127.0.0.1:1' };
  const [plain, debug, known] = await Promise.all([
    cli('ec2-results', [], down),
    cli('ec2-results', [], { ...down, DEBUG: '1' }),
    cli('ec2-results', ['--lines', '0'], { DEBUG: '1' }),
  ]);
  t.equal(plain.code, 1, 'an endpoint that refuses: exit 1, a failure while working');
  t.match(
    plain.stderr,
    /^ec2-results: Error: connect ECONNREFUSED 127\.0\.0\.1:1: AWS did not answer: check AWS_ENDPOINT_URL [^\n]*the network and any proxy\n$/,
    'one line without DEBUG, saying where to look',
  );
  t.match(
    debug.stderr,
    /^ec2-results: Error: connect ECONNREFUSED [^\n]*\nError: [^\n]*\n\s+at /,
    'DEBUG=1: then the stack',
  );
  t.equal(known.code, 2, 'a bad flag: exit 2');
  t.equal(
    known.stderr,
    'ec2-results: --lines must be a whole number from 1 to 500 (got "0")\n',
    'DEBUG=1 adds nothing to it',
  );
});

t.test('an endpoint whose host does not resolve is named as the place to look, exit 1', async (t) => {
  // In a network namespace of its own (no interface up, not even loopback) the lookup fails at once
  // with EAI_AGAIN, as on a laptop offline: nothing, not even the DNS query, leaves the machine.
  const { stderr, status } = spawnSync(
    'unshare',
    ['--net', process.execPath, await cliBundle('ec2-results'), '--poll-interval-ms', '20'],
    {
      encoding: 'utf8',
      timeout: 60_000,
      env: {
        PATH: process.env.PATH,
        HOME: '/nonexistent',
        NODE_NO_WARNINGS: '1',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_ENDPOINT_URL: 'http://no-such-host.invalid:5000',
      },
    },
  );
  t.equal(status, 1, `exit 1 (${stderr})`);
  t.match(
    stderr,
    /^ec2-results: Error: getaddrinfo EAI_AGAIN no-such-host\.invalid: AWS did not answer: check AWS_ENDPOINT_URL [^\n]*the network and any proxy\n$/,
    'one line: the lookup that failed, then where to look',
  );
});

t.test('AWS_ENDPOINT_URL without http:// is named as the place to look, in one line, exit 1', async (t) => {
  // The emulator's address typed as it is printed, without http://: Node's URL parser refuses it.
  const run = await cli('ec2-results', [], { AWS_ENDPOINT_URL: '127.0.0.1:5000' });
  t.equal(run.code, 1, 'exit 1');
  t.equal(
    run.stderr,
    'ec2-results: TypeError: Invalid URL: AWS did not answer: check AWS_ENDPOINT_URL (unset for AWS itself; a whole URL such as http://127.0.0.1:5000 for an emulator), the network and any proxy\n',
    'says which setting to check and what a good one looks like',
  );
});

t.test('an endpoint that is not AWS (a proxy page) is named as such, in one line, exit 1', async (t) => {
  // What a corporate proxy or a wrong AWS_ENDPOINT_URL answers: a web page, not AWS's XML or JSON.
  const page = createServer((_req, res) => {
    res.writeHead(403, { 'Content-Type': 'text/html' }).end('<html><head><meta></head><p>blocked</p></html>');
  });
  page.listen(0, '127.0.0.1');
  await once(page, 'listening');
  t.teardown(() => void page.close());
  const env = { AWS_ENDPOINT_URL: `http://127.0.0.1:${(page.address() as AddressInfo).port}` };
  const runs = await Promise.all([
    cli('ec2-results', [], env),
    cli('provision-ec2', ['--service-url', URL_, '--dry-run'], env),
  ]);
  for (const [run, name] of [
    [runs[0], 'ec2-results'],
    [runs[1], 'provision-ec2'],
  ] as const) {
    t.equal(run.code, 1, `${name}: exit 1, a failure while working`);
    t.equal(
      run.stderr,
      `${name}: an AWS call got an answer AWS would not send (HTTP 403, text/html): check AWS_ENDPOINT_URL, AWS_REGION and any proxy between here and AWS\n`,
      `${name}: one line saying what came back and where to look, not the SDK's parse error`,
    );
  }
});
