import {
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  type InstanceStateName,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  GetInstanceProfileCommand,
  GetRoleCommand,
  IAMClient,
  NoSuchEntityException,
} from '@aws-sdk/client-iam';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  InternalServerError,
  InvalidInstanceId,
  InvocationDoesNotExist,
  ListTagsForResourceCommand,
  ParameterNotFound,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { CredentialsProviderError } from '@smithy/core/config';
import { mockClient } from 'aws-sdk-client-mock';
import t from 'tap';
import { ConfigError } from '../lib/errors.ts';
import { checkCredentials } from '../scripts/aws/credentials.ts';
import { CommandFailedError, WaitTimeoutError } from '../scripts/aws/errors.ts';
import { isGraviton, launchInstances } from '../scripts/aws/instances.ts';
import { createReporter } from '../scripts/aws/report.ts';
import { printResults } from '../scripts/aws/results.ts';
import { runCommand, sendCommandInput, waitForRegistration } from '../scripts/aws/ssm-command.ts';
import { teardown } from '../scripts/aws/teardown.ts';
import { waiterConfig, waitFor } from '../scripts/aws/wait.ts';

// These cover what the local emulator cannot produce; the happy paths run against moto elsewhere.
const FAST = { delaySeconds: 0.001, maxWaitSeconds: 2 };
const SHORT = { delaySeconds: 0.001, maxWaitSeconds: 0.02 };
const meta = { $metadata: {} };

function named(name: string, message = name, extra: object = {}): Error {
  return Object.assign(new Error(message), { name, ...extra });
}

/** The error a promise rejects with (or undefined if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

function ssmMock(t: { teardown(fn: () => unknown): void }) {
  const client = new SSMClient({ region: 'us-east-1' });
  const mock = mockClient(client);
  t.teardown(() => mock.restore());
  return { client, mock };
}

/** runCommand with a command that may take `timeoutSeconds`, on i-1 (or `instanceId`), waits starting at 1 ms. */
function run(client: SSMClient, comment: string, timeoutSeconds = 2, instanceId = 'i-1') {
  const command = { comment, commands: ['true'], timeoutSeconds };
  return runCommand(client, {
    command,
    target: { tagProject: 'rn' },
    instanceIds: [instanceId],
    delaySeconds: 0.001,
  });
}

t.test('runCommand: not-yet, throttling and in-progress are waited through', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1' } });
  mock
    .on(GetCommandInvocationCommand)
    .rejectsOnce(new InvocationDoesNotExist({ message: 'not yet', ...meta }))
    .rejectsOnce(named('ThrottlingException', 'Rate exceeded'))
    .resolvesOnce({ Status: 'InProgress' })
    .resolves({ Status: 'Success', StandardOutputContent: 'done\n', ResponseCode: 0 });
  const { results } = await run(client, 'install');
  t.same(results, [{ instanceId: 'i-1', stdout: 'done\n' }], 'ends in Success, with the remote stdout');
  t.equal(mock.commandCalls(GetCommandInvocationCommand).length, 4, 'asked four times');
});

t.test('Delayed (SSM postponed the command: the instance was busy) is still running', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-7' } });
  mock
    .on(GetCommandInvocationCommand)
    .resolvesOnce({ Status: 'Delayed' })
    .resolves({ Status: 'Success', StandardOutputContent: 'done\n', ResponseCode: 0 });
  const { results } = await run(client, 'install');
  t.same(results, [{ instanceId: 'i-1', stdout: 'done\n' }], 'waited past Delayed to Success');
  t.equal(mock.commandCalls(GetCommandInvocationCommand).length, 2, 'asked twice');
});

t.test('a Failed command throws with the remote stderr', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-2' } });
  mock.on(GetCommandInvocationCommand).resolves({
    Status: 'Failed',
    ResponseCode: 1,
    StandardErrorContent: 'install.sh: error: dnf install nodejs22 failed\n',
  });
  const err = await rejection(run(client, 'verify and install'));
  t.ok(
    err instanceof CommandFailedError &&
      /verify and install" Failed on i-1 \(exit 1\): install\.sh: error: dnf install nodejs22 failed/.test(
        err?.message ?? '',
      ),
    'CommandFailedError naming the command, instance, exit code and remote stderr',
  );
  const sent = mock.commandCalls(SendCommandCommand)[0]?.args[0].input;
  t.same(
    sent?.Targets,
    [
      { Key: 'tag:Project', Values: ['rn'] },
      { Key: 'tag:CreatedBy', Values: ['random-number-provision-ec2'] },
    ],
    'the command targets the tags',
  );
  t.equal(sent?.MaxErrors, '0', 'MaxErrors is set');
  t.equal(sent?.MaxConcurrency, '100%', 'MaxConcurrency is set');
});

t.test('a Failed command with output on both streams names the stderr, not the progress', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-8' } });
  mock.on(GetCommandInvocationCommand).resolves({
    Status: 'Failed',
    ResponseCode: 1,
    StandardOutputContent: 'progress: staged part 1 of 3\n',
    StandardErrorContent: 'install.sh: error: checksum mismatch\n',
  });
  const err = await rejection(run(client, 'install'));
  t.match(
    err?.message,
    /\(exit 1\): install\.sh: error: checksum mismatch$/,
    'the stderr line ends the message',
  );
  t.notMatch(err?.message, /progress/, 'the stdout is left out when there is a stderr');

  mock.on(GetCommandInvocationCommand).resolves({
    Status: 'Failed',
    ResponseCode: 2,
    StandardOutputContent: 'only stdout\n',
  });
  const quiet = await rejection(run(client, 'install'));
  t.match(quiet?.message, /\(exit 2\): only stdout$/, 'without a stderr, the stdout is what there is');
});

t.test('a command that never finishes times out with a message saying how to look', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-3' } });
  mock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
  await t.rejects(
    run(client, 'part 1 of 6', 0.02),
    { name: 'WaitTimeoutError', message: /part 1 of 6.*aws ssm get-command-invocation --command-id c-3/ },
    'WaitTimeoutError with the aws command to inspect it',
  );
});

t.test('any other error reading the invocation ends the wait at once, as it is', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-5' } });
  mock
    .on(GetCommandInvocationCommand)
    .rejects(named('AccessDeniedException', 'not allowed: ssm:GetCommandInvocation'));
  await t.rejects(
    run(client, 'install', 60),
    { name: 'AccessDeniedException' },
    'the AWS error, not a timeout',
  );
  t.equal(mock.commandCalls(GetCommandInvocationCommand).length, 1, 'asked once: not retried for minutes');
});

t.test('the command may wait its timeout to start and as long again to run', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-6' } });
  mock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', ResponseCode: 0 });
  await run(client, 'install', 900);
  const sent = mock.commandCalls(SendCommandCommand)[0]?.args[0].input;
  t.equal(sent?.TimeoutSeconds, 900, 'TimeoutSeconds: SSM starts it within 900 s or not at all');
  t.same(
    sent?.Parameters?.executionTimeout,
    ['900'],
    "executionTimeout: AWS-RunShellScript's bound on the run",
  );
});

t.test('an invocation that never appears ends with a message about targeting', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-4' } });
  mock.on(GetCommandInvocationCommand).rejects(new InvocationDoesNotExist({ message: 'no', ...meta }));
  await t.rejects(
    run(client, 'part 2 of 6', 0.02, 'i-7'),
    {
      name: 'WaitTimeoutError',
      message: /never reached i-7 within 0.02 s: is .*registered with SSM and tagged/,
    },
    'WaitTimeoutError when the waiter gives up, saying the instance was not targeted',
  );
});

t.test('registration: DescribeInstanceInformation decides where it exists', async (t) => {
  const { client, mock } = ssmMock(t);
  mock
    .on(DescribeInstanceInformationCommand)
    .resolvesOnce({ InstanceInformationList: [{ InstanceId: 'i-1', PingStatus: 'Online' }] })
    .resolves({
      InstanceInformationList: [
        { InstanceId: 'i-1', PingStatus: 'Online' },
        { InstanceId: 'i-2', PingStatus: 'Online' },
      ],
    });
  const how = await waitForRegistration(client, ['i-1', 'i-2'], FAST);
  t.equal(how, 'DescribeInstanceInformation', 'decided by DescribeInstanceInformation');
  t.equal(mock.commandCalls(DescribeInstanceInformationCommand).length, 2, 'waited until both were online');
  t.equal(mock.commandCalls(SendCommandCommand).length, 0, 'no probe command was sent');
});

t.test(
  'registration: an instance listed but not Online (ConnectionLost) is not registered yet',
  async (t) => {
    const { client, mock } = ssmMock(t);
    mock
      .on(DescribeInstanceInformationCommand)
      .resolvesOnce({ InstanceInformationList: [{ InstanceId: 'i-1', PingStatus: 'ConnectionLost' }] })
      .resolves({ InstanceInformationList: [{ InstanceId: 'i-1', PingStatus: 'Online' }] });
    const how = await waitForRegistration(client, ['i-1'], FAST);
    t.equal(how, 'DescribeInstanceInformation', 'decided by DescribeInstanceInformation');
    t.equal(mock.commandCalls(DescribeInstanceInformationCommand).length, 2, 'waited for Online');
  },
);

t.test(
  'registration: every page of DescribeInstanceInformation counts (SSM pages a filtered list)',
  async (t) => {
    const { client, mock } = ssmMock(t);
    const online = (id: string) => ({ InstanceId: id, PingStatus: 'Online' as const });
    mock
      .on(DescribeInstanceInformationCommand)
      .resolves({ InstanceInformationList: [online('i-1')], NextToken: 'p2' })
      .on(DescribeInstanceInformationCommand, { NextToken: 'p2' })
      .resolves({ InstanceInformationList: [], NextToken: 'p3' })
      .on(DescribeInstanceInformationCommand, { NextToken: 'p3' })
      .resolves({ InstanceInformationList: [online('i-2')] });
    const how = await waitForRegistration(client, ['i-1', 'i-2'], FAST);
    t.equal(how, 'DescribeInstanceInformation', 'both online across three pages, one of them empty');
    t.equal(
      mock.commandCalls(DescribeInstanceInformationCommand).length,
      3,
      'one check read the three pages (i-2 is only on the last one)',
    );
  },
);

t.test('registration: without DescribeInstanceInformation, InvalidInstanceId means not yet', async (t) => {
  const { client, mock } = ssmMock(t);
  // What the emulator answers: an HTML 500 page the SDK cannot parse.
  mock
    .on(DescribeInstanceInformationCommand)
    .rejects(named('SyntaxError', 'Unexpected token <', { $metadata: { httpStatusCode: 500 } }));
  mock
    .on(SendCommandCommand)
    .rejectsOnce(new InvalidInstanceId({ message: 'not registered', ...meta }))
    .resolves({ Command: { CommandId: 'probe' } });
  const how = await waitForRegistration(client, ['i-1'], FAST);
  t.equal(how, 'SendCommand probe', 'decided by the SendCommand probe');
  t.equal(mock.commandCalls(SendCommandCommand).length, 2, 'the probe was retried after InvalidInstanceId');
  t.equal(
    mock.commandCalls(DescribeInstanceInformationCommand).length,
    1,
    'the missing API was asked only once',
  );
});

t.test('registration: the other ways an endpoint says it lacks the operation', async (t) => {
  const lacking = (name: string, status: number, $fault: string) =>
    named(name, 'DescribeInstanceInformation is not offered here', {
      $fault,
      $metadata: { httpStatusCode: status },
    });
  for (const [what, err] of [
    ['HTTP 501', lacking('UnknownError', 501, 'server')],
    ['NotImplemented', lacking('NotImplemented', 400, 'client')],
    ['UnknownOperationException', lacking('UnknownOperationException', 400, 'client')],
    ['InvalidAction', lacking('InvalidAction', 400, 'client')],
  ] as const) {
    const { client, mock } = ssmMock(t);
    mock.on(DescribeInstanceInformationCommand).rejects(err);
    mock.on(SendCommandCommand).resolves({ Command: { CommandId: 'probe' } });
    const how = await waitForRegistration(client, ['i-1'], FAST).catch((e: Error) => `rethrown ${e.name}`);
    t.equal(how, 'SendCommand probe', `${what}: the probe decides instead`);
  }
});

t.test("registration: a real service's own 500 is an error, not a missing operation", async (t) => {
  const { client, mock } = ssmMock(t);
  mock
    .on(DescribeInstanceInformationCommand)
    .rejects(new InternalServerError({ message: 'try later', ...meta, $metadata: { httpStatusCode: 500 } }));
  await t.rejects(
    waitForRegistration(client, ['i-1'], FAST),
    { name: 'InternalServerError' },
    "rethrown: a modelled AWS error carries $fault, the emulator's web page does not",
  );
  t.equal(mock.commandCalls(SendCommandCommand).length, 0, 'no fallback probe');
});

t.test('registration that never happens times out with what to check', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [] });
  const err = await rejection(waitForRegistration(client, ['i-9'], SHORT));
  t.ok(
    err instanceof WaitTimeoutError &&
      /SSM registration of i-9/.test(err?.message ?? '') &&
      /outbound HTTPS/.test(err?.message ?? '') &&
      /AmazonSSMManagedInstanceCore/.test(err?.message ?? ''),
    'WaitTimeoutError naming the instance and the usual causes',
  );
});

t.test('registration: an unexpected error is not swallowed', async (t) => {
  const { client, mock } = ssmMock(t);
  mock.on(DescribeInstanceInformationCommand).rejects(named('AccessDeniedException', 'not allowed'));
  await t.rejects(
    waitForRegistration(client, ['i-1'], FAST),
    { name: 'AccessDeniedException' },
    'rethrown as is',
  );
});

t.test('launch retries only the instance-profile propagation error, bounded', async (t) => {
  const client = new EC2Client({ region: 'us-east-1' });
  const mock = mockClient(client);
  t.teardown(() => mock.restore());
  const notReady = named(
    'InvalidParameterValue',
    'Value (rn-agent) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name',
  );
  mock
    .on(RunInstancesCommand)
    .rejectsOnce(notReady)
    .rejectsOnce(notReady)
    .resolves({ Instances: [{ InstanceId: 'i-new' }] });
  const options = {
    name: 'rn',
    count: 1,
    ami: { imageId: 'ami-1', rootDeviceName: '/dev/xvda' },
    instanceType: 't3.micro',
    instanceProfileName: 'rn-agent',
    securityGroupId: 'sg-1',
    profileRetry: FAST,
  };
  const launched = await launchInstances(client, options);
  t.same(launched, ['i-new'], 'launched after the profile became usable');
  t.equal(mock.commandCalls(RunInstancesCommand).length, 3, 'RunInstances was retried twice');
  const input = mock.commandCalls(RunInstancesCommand)[0]?.args[0].input;
  t.equal(input?.MetadataOptions?.HttpTokens, 'required', 'IMDSv2 required');
  t.same(
    input?.BlockDeviceMappings?.[0]?.Ebs,
    { VolumeType: 'gp3', VolumeSize: 8, Encrypted: true, DeleteOnTermination: true },
    'encrypted gp3 root',
  );

  mock.reset();
  mock.on(RunInstancesCommand).rejects(named('InsufficientInstanceCapacity', 'no capacity'));
  await t.rejects(
    launchInstances(client, options),
    { name: 'InsufficientInstanceCapacity' },
    'other errors are not retried',
  );
  t.equal(mock.commandCalls(RunInstancesCommand).length, 1, 'called once');

  // The same error name about something else (a subnet): not the profile, not retried.
  mock.reset();
  mock
    .on(RunInstancesCommand)
    .rejects(named('InvalidParameterValue', 'Value (subnet-0bad) for parameter subnetId is invalid.'));
  await t.rejects(
    launchInstances(client, { ...options, profileRetry: SHORT }),
    { name: 'InvalidParameterValue', message: /subnetId/ },
    'an InvalidParameterValue that does not name the instance profile is rethrown as is',
  );
  t.equal(mock.commandCalls(RunInstancesCommand).length, 1, 'called once');

  mock.reset();
  mock.on(RunInstancesCommand).rejects(notReady);
  await t.rejects(
    launchInstances(client, { ...options, profileRetry: SHORT }),
    { name: 'WaitTimeoutError', message: /instance profile rn-agent to become usable/ },
    'a profile that never propagates ends in a clear timeout',
  );
});

t.test('credentials: missing or rejected credentials become one clear ConfigError', async (t) => {
  const client = new STSClient({ region: 'us-east-1' });
  const mock = mockClient(client);
  t.teardown(() => mock.restore());
  mock
    .on(GetCallerIdentityCommand)
    .rejects(new CredentialsProviderError('Could not load credentials from any providers'));
  const err = await rejection(checkCredentials(client));
  t.ok(
    err instanceof ConfigError &&
      /AWS_PROFILE/.test(err?.message ?? '') &&
      /AWS_ACCESS_KEY_ID/.test(err?.message ?? ''),
    'missing credentials name AWS_PROFILE and AWS_ACCESS_KEY_ID',
  );
  mock.reset();
  mock
    .on(GetCallerIdentityCommand)
    .rejects(named('ExpiredToken', 'The security token included in the request is expired'));
  await t.rejects(
    checkCredentials(client),
    { name: 'ConfigError', message: /rejected the credentials \(ExpiredToken\)/ },
    'expired credentials say so',
  );
  mock.reset();
  mock.on(GetCallerIdentityCommand).rejects(named('InternalFailure', 'boom'));
  await t.rejects(checkCredentials(client), { name: 'InternalFailure' }, 'anything else is rethrown');
  mock.reset();
  mock.on(GetCallerIdentityCommand).resolves({ Account: '123', Arn: 'arn:aws:iam::123:user/me' });
  t.same(
    await checkCredentials(client),
    { account: '123', arn: 'arn:aws:iam::123:user/me', region: 'us-east-1', partition: 'aws' },
    'the identity, region and partition',
  );
});

t.test('waitFor treats throttling as not yet and rethrows anything else at once', async (t) => {
  let calls = 0;
  const value = await waitFor({
    ...FAST,
    what: 'x',
    check: async () => {
      calls += 1;
      if (calls < 3) throw named('RequestLimitExceeded');
      return 'ok';
    },
  });
  t.equal(value, 'ok', 'got the value after two throttled calls');
  await t.rejects(
    waitFor({ ...FAST, what: 'x', check: async () => Promise.reject(named('UnauthorizedOperation')) }),
    { name: 'UnauthorizedOperation' },
    'other errors end the wait',
  );
});

t.test('waiterConfig: the first delay, backing off to three times it, within the maximum wait', async (t) => {
  const client = {};
  t.same(
    waiterConfig(client, { delaySeconds: 5, maxWaitSeconds: 300 }),
    { client, minDelay: 5, maxDelay: 15, maxWaitTime: 300 },
    '5 s backs off to 15 s',
  );
  t.same(
    waiterConfig(client, { delaySeconds: 0.02, maxWaitSeconds: 2 }),
    { client, minDelay: 0.02, maxDelay: 1, maxWaitTime: 2 },
    'at least 1 s between the later checks',
  );
  t.same(
    waiterConfig(client, { delaySeconds: 60, maxWaitSeconds: 20 }),
    { client, minDelay: 10, maxDelay: 30, maxWaitTime: 20 },
    'a first delay longer than the wait is cut to half of it (the SDK requires it under the maximum)',
  );
});

t.test('Graviton instance types get the arm64 AMI', async (t) => {
  for (const type of 't4g.micro m7g.large c7gn.xlarge r8g.medium im4gn.large g5g.xlarge a1.medium'.split(
    ' ',
  )) {
    t.ok(isGraviton(type), `${type} is Graviton`);
  }
  for (const type of ['t3.micro', 'm7i.large', 'g4dn.xlarge', 'c7a.large', 'g6.xlarge', 'mac2.metal']) {
    t.notOk(isGraviton(type), `${type} is not Graviton`);
  }
});

t.test('sendCommandInput targets the fleet by tag, or instance ids', async (t) => {
  const byTag = sendCommandInput(
    { comment: 'c', commands: ['true'], timeoutSeconds: 60 },
    { tagProject: 'rn' },
  );
  t.same(
    byTag.Targets,
    [
      { Key: 'tag:Project', Values: ['rn'] },
      { Key: 'tag:CreatedBy', Values: ['random-number-provision-ec2'] },
    ],
    'by tag',
  );
  t.equal(byTag.DocumentName, 'AWS-RunShellScript', 'AWS-RunShellScript');
  const byId = sendCommandInput(
    { comment: 'c', commands: ['true'], timeoutSeconds: 60 },
    { instanceIds: ['i-1'] },
  );
  t.same(byId.InstanceIds, ['i-1'], 'by instance id');
  t.notOk('Targets' in byId, 'no tag target then');
});

t.test('ec2-results on an instance SSM cannot reach yet says so', async (t) => {
  const ec2 = new EC2Client({ region: 'us-east-1' });
  const ssm = new SSMClient({ region: 'us-east-1' });
  const mocks = [mockClient(ec2), mockClient(ssm)] as const;
  t.teardown(() => {
    for (const m of mocks) m.restore();
  });
  mocks[0]
    .on(DescribeInstancesCommand)
    .resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-new', State: { Name: 'running' } }] }] });
  mocks[1]
    .on(SendCommandCommand)
    .rejects(new InvalidInstanceId({ message: 'Instances not in a valid state', ...meta }));
  const lines: string[] = [];
  const session = {
    ec2,
    ssm,
    iam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
    report: createReporter({ write: (text) => void lines.push(text) }),
    identity: { account: '1', arn: 'arn:aws:iam::1:user/me', region: 'us-east-1', partition: 'aws' },
  };
  await t.rejects(
    printResults(session, { name: 'rn', lines: 10, outputFile: '/root/randomNumber.txt', delaySeconds: 5 }),
    { name: 'AwsStateError', message: /i-new not reachable through SSM yet \(InvalidInstanceId\)/ },
    'AwsStateError saying the instance is not registered yet',
  );
  t.equal(lines.length, 0, 'no step finished');
});

t.test(
  'the reporter prints one line per step with elapsed time, and progress during long waits',
  async (t) => {
    const lines: string[] = [];
    let progress = 0;
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const report = createReporter({
      progressEverySeconds: 0.01,
      write: (text) => {
        lines.push(text);
        if (text.includes('still waiting') && ++progress === 2) release();
      },
    });
    // The step ends only after two progress lines were written: no sleep, the output is the event.
    const value = await report.step(
      'SSM registration',
      () => released.then(() => 'ok'),
      (v) => `all ${v}`,
    );
    t.equal(value, 'ok', 'the step returns its value');
    t.match(
      lines[0],
      /^\[\s+\d+\.\d s\] … SSM registration: still waiting \(\d+ s\)\n$/,
      'progress line with elapsed time',
    );
    t.match(
      lines.at(-1),
      /^\[\s+\d+\.\d s\] ✓ SSM registration: all ok \(\d+\.\d s\)\n$/,
      'one line when the step ends',
    );
    const count = lines.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    t.equal(lines.length, count, 'no progress lines after the step ended');
    await t.rejects(
      report.step('failing', () => Promise.reject(new Error('boom'))),
      { message: 'boom' },
      'a failing step rethrows',
    );
  },
);

/**
 * teardown() of one running instance i-1 and its security group sg-1, with no IAM role, profile or token
 * parameter, on mocked clients: for the states moto cannot produce (it terminates an instance at once and
 * deletes a group an instance still holds). `events` records the EC2 calls in the order they were made;
 * `states` are the waiter's DescribeInstances answers, the last one repeated.
 */
function mockedTeardown(t: { teardown(fn: () => unknown): void }, states: InstanceStateName[]) {
  const region = { region: 'us-east-1' };
  const [ec2, iam, ssm] = [new EC2Client(region), new IAMClient(region), new SSMClient(region)] as const;
  const [ec2Mock, iamMock, ssmMock_] = [mockClient(ec2), mockClient(iam), mockClient(ssm)] as const;
  t.teardown(() => {
    for (const m of [ec2Mock, iamMock, ssmMock_]) m.restore();
  });
  const events: string[] = [];
  const instances = (state: InstanceStateName) => ({
    Reservations: [{ Instances: [{ InstanceId: 'i-1', State: { Name: state } }] }],
  });
  // findInstances filters by tag and state; the terminated waiter names the instance.
  ec2Mock.on(DescribeInstancesCommand).resolves(instances('running'));
  let answer = 0;
  ec2Mock.on(DescribeInstancesCommand, { InstanceIds: ['i-1'] }).callsFake(async () => {
    const state = states[Math.min(answer++, states.length - 1)] as InstanceStateName;
    events.push(`described ${state}`);
    return instances(state);
  });
  ec2Mock.on(TerminateInstancesCommand).callsFake(async () => void events.push('terminate'));
  ec2Mock
    .on(DescribeSecurityGroupsCommand)
    .resolves({ SecurityGroups: [{ GroupId: 'sg-1', GroupName: 'rn' }] });
  const absent = { message: 'absent', ...meta };
  iamMock.on(GetRoleCommand).rejects(new NoSuchEntityException(absent));
  iamMock.on(GetInstanceProfileCommand).rejects(new NoSuchEntityException(absent));
  ssmMock_.on(ListTagsForResourceCommand).rejects(new ParameterNotFound(absent));
  const lines: string[] = [];
  const report = createReporter({ write: (text) => void lines.push(text) });
  const run = () =>
    teardown({ ec2, iam, ssm, report } as never, { name: 'rn', delaySeconds: 0.001, dryRun: false });
  return { ec2Mock, events, lines, run };
}

t.test('teardown waits until the instances are terminated before removing their group', async (t) => {
  const { ec2Mock, events, run } = mockedTeardown(t, ['shutting-down', 'terminated']);
  ec2Mock.on(DeleteSecurityGroupCommand).callsFake(async () => void events.push('delete sg-1'));
  await run();
  t.same(
    events,
    ['terminate', 'described shutting-down', 'described terminated', 'delete sg-1'],
    'DescribeInstances asked again after shutting-down; the group deleted only once it said terminated',
  );
});

t.test('deleting the group retries DependencyViolation until the instance releases it', async (t) => {
  const { ec2Mock, events, lines, run } = mockedTeardown(t, ['terminated']);
  const held = named('DependencyViolation', 'resource sg-1 has a dependent object');
  ec2Mock.on(DeleteSecurityGroupCommand).callsFake(async () => {
    events.push('delete sg-1');
    if (events.filter((e) => e === 'delete sg-1').length < 3) throw held;
  });
  await run();
  t.same(
    events,
    ['terminate', 'described terminated', 'delete sg-1', 'delete sg-1', 'delete sg-1'],
    'DeleteSecurityGroup tried again after each DependencyViolation, until it succeeded',
  );
  t.match(lines.join(''), /✓ security group: security group rn \(sg-1\)/, 'and the step reports it removed');
});

t.test('a group already gone (InvalidGroup.NotFound) counts as removed', async (t) => {
  const { ec2Mock, events, run } = mockedTeardown(t, ['terminated']);
  ec2Mock.on(DeleteSecurityGroupCommand).callsFake(async () => {
    events.push('delete sg-1');
    throw named('InvalidGroup.NotFound', "The security group 'sg-1' does not exist");
  });
  await run();
  t.same(events, ['terminate', 'described terminated', 'delete sg-1'], 'asked once, and teardown went on');
});
