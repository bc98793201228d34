import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreatePolicyVersionCommand,
  CreateUserCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRoleCommand,
  IAMClient,
  ListPolicyVersionsCommand,
} from '@aws-sdk/client-iam';
import { ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import t, { type Test } from 'tap';
import { boundaryArn } from '../scripts/aws/boundary.ts';
import { noStack, startAwsCli } from './helpers/aws-cli.ts';
import { BOUNDARY_POLICY, OPERATOR_POLICY } from './helpers/iam-eval.ts';
import { adminAndOperator, enforceIam, userWithPolicy } from './helpers/moto-iam.ts';
import { type Output, outputOf } from './helpers/process.ts';

// The README's path, run as a new user runs it: an administrator bootstraps the account, then the real
// CLIs run with only the keys of an IAM user holding docs/iam-policy.json, against moto_server with its
// IAM enforcement on (INITIAL_NO_AUTH_ACTION_COUNT, set to 0 through /moto-api/reset-auth once the users
// exist: from then on every request must be signed by a known user's key and is checked against that
// user's policies; sts:GetCallerIdentity alone is always allowed).
//
// What this proves, from moto/iam/access_control.py (moto 5): every AWS action the CLIs and the README's
// `aws ssm` commands call is in the policy's Action lists: one missing action (as iam:GetRolePolicy was
// for the upgrade) fails its command here with AccessDenied. And, from moto's recording of the requests,
// that every action the policy grants is called by them (or implied by one that is). What it does not prove: moto checks a
// statement's Resource only against the ARN of an existing IAM role named by RoleName, and "*" for
// every other request (EC2, SSM, Run Command, IAM calls on profiles, policies and roles yet to exist),
// so a statement scoped to real ARNs would never match here; it evaluates no condition keys (tags,
// iam:PermissionsBoundary, iam:PolicyARN, ec2:CreateAction, aws:ResourceAccount), and no implied
// permission (iam:PassRole for RunInstances and AddRoleToInstanceProfile, ec2:CreateTags for tags on
// create, ssm:AddTagsToResource for PutParameter with tags). So the user here holds the policy's
// statements with Resource widened to "*" and no Condition: the same actions, nothing more. Resources,
// conditions and implied permissions are proven request by request in aws-iam-policy.test.ts.

const URL_ = 'https://random-number.default.example.com';
// moto records the requests it receives here (/moto-api/recorder) while the commands run: which
// actions the operator's key called, compared with the policy at the end.
const recordingDir = mkdtempSync(join(tmpdir(), 'moto-recording-'));
t.teardown(() => rmSync(recordingDir, { recursive: true, force: true }));
const recording = join(recordingDir, 'requests.jsonl');
const aws = await startAwsCli(t, { bootstrap: false, motoEnv: { MOTO_RECORDER_FILEPATH: recording } });
const endpoint = aws.moto.endpoint;

// Set up while the emulator still takes any key: an administrator, and the operator holding
// docs/iam-policy.json as moto can evaluate it (see above: the same actions, Resource "*").
const { admin, operator } = await adminAndOperator(aws.iam);
// For a control below: a user whose policy lacks ssm:ListCommandInvocations.
const sendOnly = await userWithPolicy(aws.iam, 'send-only', {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'ssm:SendCommand', Resource: '*' }],
});
const { Subnets } = await aws.ec2.send(new DescribeSubnetsCommand({}));
const subnet = Subnets?.[0]?.SubnetId as string;

const enforced = await enforceIam(endpoint);

const asAdmin = {
  region: 'us-east-1',
  endpoint,
  credentials: { accessKeyId: admin.AWS_ACCESS_KEY_ID, secretAccessKey: admin.AWS_SECRET_ACCESS_KEY },
};
const ec2 = new EC2Client(asAdmin);
const iam = new IAMClient(asAdmin);
const ssm = new SSMClient(asAdmin);
const asOperator = (more: Record<string, string> = {}) => ({ ...operator, ...more });

t.test('the emulator enforces IAM: unknown keys and actions outside the policy are refused', async (t) => {
  t.equal(enforced, 200, 'moto took INITIAL_NO_AUTH_ACTION_COUNT=0');
  const anyKey = new IAMClient({
    ...asAdmin,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  await t.rejects(
    anyKey.send(new GetRoleCommand({ RoleName: 'x' })),
    { name: 'InvalidClientTokenId' },
    'a key no user holds',
  );
  const opIam = new IAMClient({
    ...asAdmin,
    credentials: { accessKeyId: operator.AWS_ACCESS_KEY_ID, secretAccessKey: operator.AWS_SECRET_ACCESS_KEY },
  });
  await t.rejects(
    opIam.send(new CreateUserCommand({ UserName: 'sneaky' })),
    { name: 'AccessDenied' },
    'the operator may not do what the policy does not list (iam:CreateUser)',
  );
});

// One administrator's and one operator's day, in order: each step starts from what the one before left
// (no boundary yet, then the boundary, then the resources), and the last checks every call made.
t.test(
  'bootstrap, then the operator provisions, upgrades, reads and tears down; every grant used',
  async (t) => {
    await t.test(
      'before the administrator bootstraps, provision-ec2 says what is missing and who runs what',
      async (t) => {
        const [dry, byOperator] = await Promise.all([
          aws.cli('provision-ec2', ['--service-url', URL_, '--name', 'rn-iam', '--dry-run'], asOperator()),
          aws.cli('iam-bootstrap', [], asOperator()),
        ]);
        t.equal(dry.code, 2, 'exit 2: the account is not set up yet (fix, then rerun)');
        t.match(
          dry.stderr,
          /^provision-ec2: the agent roles' permissions boundary arn:aws:iam::123456789012:policy\/random-number\/random-number-agent-boundary does not exist: an administrator of the account runs `npm run iam-bootstrap` once/,
          'one line naming the boundary and the command',
        );
        noStack(t, dry);
        t.equal(byOperator.code, 1, 'the operator cannot bootstrap: creating policies is not in its policy');
        t.match(
          byOperator.stderr,
          /^iam-bootstrap: AccessDenied: User: \S+ is not authorized to perform: iam:CreatePolicy: these credentials' IAM policy must allow it \(the operator policy is docs\/iam-policy\.json; docs\/iam\.md says who needs what\), then run again\n$/,
          'AWS says so, in one line naming the action and where to look',
        );
      },
    );

    await t.test(
      'npm run iam-bootstrap, as an administrator: creates the boundary once, then finds it',
      async (t) => {
        const first = await aws.cli('iam-bootstrap', [], admin, { via: 'npm' });
        t.equal(first.code, 0, `exit 0 (${first.stderr})`);
        t.match(
          first.stdout,
          /✓ permissions boundary: arn:aws:iam::123456789012:policy\/random-number\/random-number-agent-boundary created/,
          'says it created it',
        );
        t.match(
          first.stdout,
          /aws iam create-policy .*--policy-document file:\/\/docs\/iam-policy\.json/,
          'and what comes next',
        );
        t.match(
          first.stdout,
          /aws organizations create-policy --type SERVICE_CONTROL_POLICY .*\n.*--content file:\/\/docs\/iam-guardrail\.json\n.*aws organizations attach-policy --policy-id .* --target-id 123456789012/,
          'and how to apply the guardrail to this account',
        );
        const again = await aws.cli('iam-bootstrap', [], admin);
        t.equal(again.code, 0, `again: exit 0 (${again.stderr})`);
        t.match(again.stdout, /random-number-agent-boundary found, up to date/, 'found, nothing changed');

        // Changed by hand (or by an older version of this project), with IAM's five versions all used:
        // the next run restores the document as a new default version, making room by dropping the oldest.
        const arn = boundaryArn('aws', '123456789012');
        const stale = JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'ssm:GetParameter', Resource: '*' }],
        });
        for (let i = 0; i < 4; i++) {
          await iam.send(
            new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: stale, SetAsDefault: true }),
          );
        }
        const updated = await aws.cli('iam-bootstrap', [], admin);
        t.equal(updated.code, 0, `exit 0 (${updated.stderr})`);
        t.match(updated.stdout, /random-number-agent-boundary updated/, 'says it updated it');
        const { Policy } = await iam.send(new GetPolicyCommand({ PolicyArn: arn }));
        const { PolicyVersion } = await iam.send(
          new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: Policy?.DefaultVersionId }),
        );
        t.same(
          JSON.parse(decodeURIComponent(PolicyVersion?.Document ?? '')),
          BOUNDARY_POLICY,
          'the default version is docs/iam-boundary.json again',
        );
        const { Versions } = await iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }));
        t.equal(Versions?.length, 5, 'still five versions: the oldest went');
        // v1 (iam-bootstrap's, the oldest), not v4 (the newest of the non-default ones), made room for v6.
        t.same(
          Versions?.map((v) => v.VersionId).sort(),
          ['v2', 'v3', 'v4', 'v5', 'v6'],
          'v1, the oldest, is the one removed',
        );
      },
    );

    await t.test(
      'with only the operator keys: provision, upgrade, a fleet, results, Run Command by hand, teardown',
      async (t) => {
        // Recorded from here: the calls the commands make, not the refused ones of the tests above.
        await (
          await fetch(`${endpoint}/moto-api/recorder/start-recording`, { method: 'POST' })
        ).arrayBuffer();
        const NAME = 'rn-iam';
        const FLEET = 'rn-iam-fleet';
        const steps: [string, Awaited<ReturnType<typeof aws.cli>>][] = [];
        const run = async (what: string, ...args: Parameters<typeof aws.cli>) => {
          const result = await aws.cli(...args);
          steps.push([what, result]);
          t.equal(result.code, 0, `${what}: exit 0${result.code ? `\n${result.stderr}` : ''}`);
          t.notMatch(result.stderr, /AccessDenied/, `${what}: nothing denied`);
          return result;
        };
        const dry = await run(
          'provision --dry-run',
          'provision-ec2',
          ['--service-url', URL_, '--name', NAME, '--dry-run'],
          asOperator(),
        );
        t.match(
          dry.stdout,
          /IAM role and instance profile: create IAM role rn-iam-agent \(AmazonSSMManagedInstanceCore, permissions boundary, no parameter\)/,
          'the plan',
        );
        readOnly(t, 'provision --dry-run', operatorActions());
        await run(
          'provision with --api-token',
          'provision-ec2',
          ['--service-url', URL_, '--name', NAME],
          asOperator({ API_TOKEN: 'tok-iam-1-0123456789abcdef0123456789' }),
        );
        // A stopped instance (stopped by someone else): the re-run starts it, with the operator's keys.
        const [first] = await live([NAME]);
        await ec2.send(new StopInstancesCommand({ InstanceIds: [first?.InstanceId as string] }));
        const upgrade = await run(
          're-run without token flags',
          'provision-ec2',
          ['--service-url', URL_, '--name', NAME],
          asOperator(),
        );
        t.match(
          upgrade.stdout,
          /API token: reusing SecureString \/random-number\/rn-iam\/api-token/,
          'the upgrade keeps the token',
        );
        t.match(upgrade.stdout, /✓ start stopped instances: started i-/, 'and starts the stopped instance');
        await run(
          're-run with token flags',
          'provision-ec2',
          ['--service-url', URL_, '--name', NAME, '--api-token-parameter', '/random-number/rn-iam/api-token'],
          asOperator({ API_TOKEN: 'tok-iam-2-0123456789abcdef0123456789' }),
        );
        await run(
          '--count 2 --subnet',
          'provision-ec2',
          ['--service-url', URL_, '--name', FLEET, '--count', '2', '--subnet', subnet],
          asOperator(),
        );
        const fleet = await live([FLEET]);
        t.same(
          fleet.map((i) => i.SubnetId),
          [subnet, subnet],
          'two instances in the --subnet given',
        );
        await run('ec2-results', 'ec2-results', ['--name', NAME], asOperator());

        // The README's by-hand path: agent-command writes the JSON, the real AWS CLI sends it.
        const out = mkdtempSync(join(tmpdir(), 'iam-agent-commands-'));
        t.teardown(() => rmSync(out, { recursive: true, force: true }));
        await run(
          'agent-command',
          'agent-command',
          [
            '--service-url',
            URL_,
            '--name',
            NAME,
            '--api-token-parameter',
            '/random-number/rn-iam/api-token',
            '--region',
            'us-east-1',
            '--out',
            out,
          ],
          {},
        );
        const files = readdirSync(out).sort();
        t.ok(files.length >= 2, `${files.length} command files`);
        const before = (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0;
        // moto has no ListCommandInvocations: once authorized it answers 500, where a request the policy
        // does not allow gets AccessDenied first (the control: a user whose policy lacks the action).
        const list = (id: string, keys = operator) =>
          awsCli(['ssm', 'list-command-invocations', '--command-id', id, '--output', 'text'], keys);
        for (const file of files) {
          const sent = await awsCli([
            'ssm',
            'send-command',
            '--cli-input-json',
            `file://${join(out, file)}`,
            '--query',
            'Command.CommandId',
            '--output',
            'text',
          ]);
          t.equal(sent.code, 0, `aws ssm send-command ${file}: exit 0 ${sent.stderr}`);
          const listed = await list(sent.stdout.trim());
          t.notMatch(listed.stderr, /AccessDenied/, 'aws ssm list-command-invocations: authorized');
          t.match(
            listed.stderr,
            /\(500\) when calling the ListCommandInvocations/,
            '(then 500: moto lacks it)',
          );
        }
        const control = await list('00000000-0000-0000-0000-000000000000', sendOnly);
        t.match(control.stderr, /AccessDenied/, 'control: without the action in the policy, AccessDenied');
        const after = (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0;
        t.equal(after - before, files.length, 'every file became a command');

        for (const name of [NAME, FLEET]) {
          const from = recorded().length;
          const dryDown = await run(
            `teardown ${name} --dry-run`,
            'teardown-ec2',
            ['--name', name, '--dry-run'],
            asOperator(),
          );
          t.match(dryDown.stdout, /instances: remove instance i-/, 'the dry run names the instances');
          readOnly(t, `teardown ${name} --dry-run`, operatorActions(from));
          const down = await run(`teardown ${name}`, 'teardown-ec2', ['--name', name], asOperator());
          t.match(down.stdout, /removed \d+:/, `teardown ${name} removed things`);
          const again = await run(`teardown ${name} again`, 'teardown-ec2', ['--name', name], asOperator());
          t.match(again.stdout, /nothing to remove/, 'twice is fine');
        }
        t.same(await live([NAME, FLEET]), [], 'no instance left');
        await t.rejects(
          iam.send(new GetRoleCommand({ RoleName: `${NAME}-agent` })),
          { name: 'NoSuchEntity' },
          'no role left',
        );
      },
    );

    await t.test(
      'every action the policy grants was used by these commands: none is there for nothing',
      async (t) => {
        const called = operatorActions();
        const granted = new Set(OPERATOR_POLICY.Statement.flatMap((s) => [s.Action].flat()));
        // Permissions AWS checks on a call of another name, which moto cannot show (see the top).
        const implied: Record<string, string> = {
          'iam:PassRole': 'RunInstances with an instance profile, AddRoleToInstanceProfile',
          'iam:TagInstanceProfile': 'CreateInstanceProfile with Tags',
          'ec2:CreateTags': 'RunInstances and CreateSecurityGroup with TagSpecifications',
          'ssm:AddTagsToResource': 'PutParameter with Tags',
        };
        for (const action of granted) {
          t.ok(called.has(action) || action in implied, `${action}: ${implied[action] ?? 'called'}`);
        }
        for (const action of called) {
          if (action !== 'sts:GetCallerIdentity') t.ok(granted.has(action), `${action}, called, is granted`);
        }
        t.ok(called.size > 20, `${called.size} distinct actions recorded with the operator's key`);
      },
    );
  },
);

/** The requests moto recorded so far, one JSON line each. */
const recorded = () =>
  readFileSync(recording, 'utf8')
    .split('\n')
    .filter((line) => line.trim());

/** A dry run's calls, read from the recording: every one only reads. */
function readOnly(t: Test, what: string, actions: Set<string>) {
  t.ok(actions.size > 3, `${what}: ${actions.size} distinct actions recorded`);
  const writes = [...actions].filter((action) => !/^\w+:(Describe|Get|List)/.test(action));
  t.same(writes, [], `${what}: only read calls (Describe*, Get*, List*)`);
}

/** `service:Action` of every request signed with the operator's key, from moto's recording (after `from`). */
function operatorActions(from = 0): Set<string> {
  const actions = new Set<string>();
  for (const line of recorded().slice(from)) {
    const entry = JSON.parse(line) as {
      headers: Record<string, string>;
      body: string | null;
      body_encoded: boolean;
    };
    const header = (name: string) =>
      Object.entries(entry.headers).find(([key]) => key.toLowerCase() === name)?.[1] ?? '';
    const scope = /Credential=([^/]+)\/[^/]+\/[^/]+\/([^/]+)\//.exec(header('authorization'));
    if (scope?.[1] !== operator.AWS_ACCESS_KEY_ID) continue;
    const body = entry.body_encoded ? Buffer.from(entry.body ?? '', 'base64').toString() : (entry.body ?? '');
    const target = header('x-amz-target').split('.')[1];
    const action = target ?? new URLSearchParams(body).get('Action');
    if (action) actions.add(`${scope[2]}:${action}`);
  }
  return actions;
}

/** Live instances of the projects, seen with the administrator's keys. */
async function live(projects: string[]) {
  const { Reservations } = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'tag:Project', Values: projects },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    }),
  );
  return (Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

/** The real AWS CLI with only the operator keys, against the emulator. */
function awsCli(args: string[], keys = operator): Promise<Output> {
  const child = spawn('aws', args, {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...aws.moto.env,
      ...keys,
      // botocore's retries of moto's 500 would only slow the test down
      AWS_MAX_ATTEMPTS: '1',
      AWS_DEFAULT_REGION: 'us-east-1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
    killSignal: 'SIGKILL',
  });
  return outputOf(child).catch((err: NodeJS.ErrnoException) => {
    throw new Error(
      err.code === 'ENOENT' ? 'the AWS CLI (aws) is not installed: pip install awscli' : err.message,
    );
  });
}
