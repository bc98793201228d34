import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import t, { type Test } from 'tap';
import { inspect, noStack, type Run, startAwsCli } from './helpers/aws-cli.ts';
import type { CliName } from './helpers/cli-bundle.ts';
import { adminAndOperator, enforceIam, motoOperatorPolicy, userWithPolicy } from './helpers/moto-iam.ts';
import { outputOf } from './helpers/process.ts';

// AWS refusing the real CLIs, against moto_server with its IAM enforcement on (as in
// aws-iam-enforced.test.ts): keys AWS does not accept, and an operator policy missing one action a
// command needs midway. Each must end in one line on stderr saying what was wrong and what to do, no
// stack trace, and keep what earlier steps made, so that a rerun with the right policy finishes the work.
//
// Denials are taken from EC2 here: moto answers every IAM denial as an XML document, which SSM's JSON
// protocol cannot read (the SDK reports a deserialization error); real SSM answers JSON with the name
// AccessDeniedException, and real EC2 UnauthorizedOperation: the last test runs the CLI edge on those.

const URL_ = 'https://random-number.default.example.com';
const NAME = 'rn-denied';
const ACCOUNT = '123456789012';
// The line every denied call ends with (lib/cli.ts).
const GRANT =
  "these credentials' IAM policy must allow it (the operator policy is docs/iam-policy.json; docs/iam.md says who needs what), then run again";

// The boundary exists (startAwsCli bootstraps it). Users are made while moto still takes any key.
const aws = await startAwsCli(t);
const { admin, operator } = await adminAndOperator(aws.iam);
/** The operator policy less one action, held by a user named after it. */
const without = (user: string, action: string) => userWithPolicy(aws.iam, user, motoOperatorPolicy([action]));
const noLaunch = await without('no-launch', 'ec2:RunInstances');
const noLookup = await without('no-lookup', 'ec2:DescribeInstances');
const noGroupDelete = await without('no-group-delete', 'ec2:DeleteSecurityGroup');
const noParameterDelete = await without('no-parameter-delete', 'ssm:DeleteParameter');
t.equal(await enforceIam(aws.moto.endpoint), 200, 'moto enforces IAM from here on');

// What exists, seen with the administrator's keys (the emulator's own dummy keys no longer pass).
const asAdmin = {
  region: 'us-east-1',
  endpoint: aws.moto.endpoint,
  credentials: { accessKeyId: admin.AWS_ACCESS_KEY_ID, secretAccessKey: admin.AWS_SECRET_ACCESS_KEY },
};
const ssmAsAdmin = new SSMClient(asAdmin);
const { snapshot, exists } = inspect({
  ec2: new EC2Client(asAdmin),
  iam: new IAMClient(asAdmin),
  ssm: ssmAsAdmin,
});

/** stderr is exactly one line, `line` (a string or a pattern for it), with no stack trace. */
function oneLine(t: Test, run: Run, line: string | RegExp) {
  const lines = run.stderr.split('\n').filter((l) => l.trim());
  t.equal(lines.length, 1, `one line on stderr:\n${run.stderr}`);
  if (typeof line === 'string') t.equal(lines[0], line, 'the line says what was wrong and what to do');
  else t.match(lines[0], line, 'the line says what was wrong and what to do');
  noStack(t, run);
}

t.test('keys AWS does not accept: exit 2, one line naming them and what to set, nothing made', async (t) => {
  const before = await snapshot(NAME);
  const wrongSecret = { ...operator, AWS_SECRET_ACCESS_KEY: 'not-the-secret-0123456789abcdef' };
  const unknownKey = {
    AWS_ACCESS_KEY_ID: 'AKIANOSUCHKEY0000000',
    AWS_SECRET_ACCESS_KEY: 'not-a-secret-0123456789abcdef',
  };
  const runs: [CliName, string[]][] = [
    ['provision-ec2', ['--service-url', URL_, '--name', NAME, '--dry-run']],
    ['provision-ec2', ['--service-url', URL_, '--name', NAME]],
    ['teardown-ec2', ['--name', NAME]],
    ['ec2-results', ['--name', NAME]],
  ];
  const cases = [
    [wrongSecret, 'SignatureDoesNotMatch', 'a wrong secret'],
    [unknownKey, 'InvalidClientTokenId', 'an unknown key id'],
  ] as const;
  // All at once: each is a process refused at its first call.
  const all = cases.flatMap(([keys, code, which]) =>
    runs.map(([cli, args]) => ({ keys, code, which, cli, args })),
  );
  const results = await Promise.all(all.map(({ cli, args, keys }) => aws.cli(cli, args, keys)));
  all.forEach(({ keys, code, which, cli, args }, i) => {
    const run = results[i] as Run;
    t.test(`${cli}${args.includes('--dry-run') ? ' --dry-run' : ''} with ${which}`, async (t) => {
      t.equal(run.code, 2, 'exit 2: fix the input (the credentials), then rerun');
      oneLine(
        t,
        run,
        `${cli}: AWS rejected the credentials (${code}): pass --profile or set AWS_PROFILE (a profile from ~/.aws/config, e.g. after \`aws sso login\`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary credentials)`,
      );
      t.equal(run.stdout, '', 'no step ran: the credentials are checked first');
      t.notMatch(run.stdout + run.stderr, keys.AWS_SECRET_ACCESS_KEY, 'the secret is not printed');
    });
  });
  t.same(
    await snapshot(NAME),
    before,
    'nothing was made: no instance, group, role, profile, token or command',
  );
});

t.test('a policy without one action the commands need: exit 1, the action and what grants it', async (t) => {
  await t.test(
    'provision-ec2 without ec2:RunInstances stops at the launch, keeping what it made',
    async (t) => {
      const run = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', NAME], noLaunch);
      t.equal(run.code, 1, 'exit 1: AWS refused while working');
      oneLine(
        t,
        run,
        `provision-ec2: AccessDenied: User: arn:aws:iam::${ACCOUNT}:user/no-launch is not authorized to perform: ec2:RunInstances: ${GRANT}`,
      );
      t.match(
        run.stdout,
        /✓ IAM role and instance profile: rn-denied-agent created/,
        'the steps before it ran',
      );
      t.match(run.stdout, /✓ security group: sg-\w+ created/, 'up to the security group');
      t.notMatch(run.stdout, /✓ launch/, 'and no further');
      t.match(
        await snapshot(NAME),
        { instances: 0, groups: 1, role: true, profile: true },
        'no instance; the role, profile and group stay',
      );

      const rerun = await aws.cli('provision-ec2', ['--service-url', URL_, '--name', NAME], operator);
      t.equal(
        rerun.code,
        0,
        `with the whole policy, a rerun finishes${rerun.code ? `\n${rerun.stderr}` : ''}`,
      );
      t.match(
        rerun.stdout,
        /✓ IAM role and instance profile: rn-denied-agent reused, profile reused/,
        'reusing the role and profile the denied run made',
      );
      t.match(rerun.stdout, /✓ security group: sg-\w+ reused/, 'and its security group');
      t.match(rerun.stdout, /done: the agent is installed on i-\w+/, 'then launches and installs');
      t.match(await snapshot(NAME), { instances: 1, groups: 1 }, 'one instance, one group: nothing twice');
    },
  );

  await t.test('ec2-results without ec2:DescribeInstances sends no command', async (t) => {
    const before = await snapshot(NAME);
    const run = await aws.cli('ec2-results', ['--name', NAME], noLookup);
    t.equal(run.code, 1, 'exit 1');
    oneLine(
      t,
      run,
      `ec2-results: AccessDenied: User: arn:aws:iam::${ACCOUNT}:user/no-lookup is not authorized to perform: ec2:DescribeInstances: ${GRANT}`,
    );
    t.same(await snapshot(NAME), before, 'nothing sent, nothing changed');
  });

  await t.test('teardown-ec2 without ec2:DeleteSecurityGroup stops after the instances', async (t) => {
    const run = await aws.cli('teardown-ec2', ['--name', NAME], noGroupDelete);
    t.equal(run.code, 1, 'exit 1');
    oneLine(
      t,
      run,
      `teardown-ec2: AccessDenied: User: arn:aws:iam::${ACCOUNT}:user/no-group-delete is not authorized to perform: ec2:DeleteSecurityGroup: ${GRANT}`,
    );
    t.match(run.stdout, /✓ instances: instance i-\w+/, 'the instances went');
    t.match(
      await snapshot(NAME),
      { instances: 0, groups: 1, role: true, profile: true },
      'the group, role and profile stay',
    );

    const rerun = await aws.cli('teardown-ec2', ['--name', NAME], operator);
    t.equal(rerun.code, 0, `with the whole policy, a rerun finishes${rerun.code ? `\n${rerun.stderr}` : ''}`);
    t.match(
      rerun.stdout,
      /removed 3:\n {2}security group rn-denied \(sg-\w+\)\n {2}instance profile rn-denied-agent\n {2}role rn-denied-agent/,
      'the rest',
    );
    t.match(
      await snapshot(NAME),
      { instances: 0, groups: 0, role: false, profile: false, token: false },
      'nothing left',
    );
  });
});

t.test('teardown-ec2 without ssm:DeleteParameter keeps the role that records the parameter', async (t) => {
  // The parameter is found again on a rerun only through the role's TokenParameter tag (it is not the
  // default name, and the operator may not list parameters): the role must outlive a failed delete.
  const name = 'rn-cust';
  const parameter = `/random-number/${name}/custom-token`;
  const args = ['--service-url', URL_, '--name', name, '--api-token-parameter', parameter];
  const up = await aws.cli('provision-ec2', args, { ...operator, API_TOKEN: 'c'.repeat(32) });
  t.equal(up.code, 0, `provision exits 0${up.code ? `\n${up.stderr}` : ''}`);
  const tokenLeft = () => exists(ssmAsAdmin.send(new GetParameterCommand({ Name: parameter })));

  const run = await aws.cli('teardown-ec2', ['--name', name], noParameterDelete);
  t.equal(run.code, 1, 'exit 1');
  // moto's denial is XML, which SSM's JSON protocol cannot read (see the top): the unreadable-answer line.
  oneLine(t, run, /^teardown-ec2: an AWS call got an answer AWS would not send \(HTTP 403/);
  t.match(run.stdout, /✓ security group: /, 'the steps before it ran');
  t.notMatch(run.stdout, /✓ IAM role/, 'and not the role');
  t.match(
    await snapshot(name),
    { instances: 0, groups: 0, role: true, profile: true },
    'role and profile stay',
  );
  t.ok(await tokenLeft(), 'and the parameter');

  const rerun = await aws.cli('teardown-ec2', ['--name', name], operator);
  t.equal(rerun.code, 0, `with the whole policy, a rerun finishes${rerun.code ? `\n${rerun.stderr}` : ''}`);
  t.match(
    rerun.stdout,
    `removed 3:\n  SecureString ${parameter}\n  instance profile ${name}-agent\n  role ${name}-agent`,
    'the parameter the role recorded, then the role and profile',
  );
  t.notOk(await tokenLeft(), 'the parameter is gone');
  t.match(await snapshot(name), { role: false, profile: false }, 'and so are the role and profile');
});

t.test("real AWS's other names for a denial get the same line; other errors do not", async (t) => {
  // The CLI edge alone (lib/cli.ts runCli), as the EC2 CLIs run it, on errors moto never sends.
  const edge = (name: string) => {
    const code = `import { runCli } from './lib/cli.ts';
      runCli('provision-ec2', () => { throw Object.assign(new Error('User: arn:aws:iam::1:user/me is not authorized'), { name: ${JSON.stringify(name)} }); });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: resolve(import.meta.dirname, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return outputOf(child);
  };
  for (const name of ['UnauthorizedOperation', 'AccessDeniedException']) {
    const run = await edge(name);
    t.equal(run.code, 1, `${name}: exit 1`);
    oneLine(t, run, `provision-ec2: ${name}: User: arn:aws:iam::1:user/me is not authorized: ${GRANT}`);
  }
  const other = await edge('InsufficientInstanceCapacity');
  oneLine(
    t,
    other,
    'provision-ec2: InsufficientInstanceCapacity: User: arn:aws:iam::1:user/me is not authorized',
  );
});
