import { readFileSync } from 'node:fs';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import t, { type Test } from 'tap';
import { agentPolicyDocument, ssmViaService } from '../scripts/aws/agent-policy.ts';
import { parseInstanceType } from '../scripts/aws/args.ts';
import { BOUNDARY_NAME, boundaryArn } from '../scripts/aws/boundary.ts';
import { partitionOf } from '../scripts/aws/credentials.ts';
import { roleName, ssmCorePolicyArn } from '../scripts/aws/iam.ts';
import { isGraviton, launchInstances } from '../scripts/aws/instances.ts';
import { CREATED_BY_TAG, IAM_PATH, PARAMETER_PREFIX, TOKEN_TAG, tokenTagValue } from '../scripts/aws/tags.ts';
import { parameterArn } from '../scripts/aws/token.ts';
import {
  ACCOUNT,
  AWS_OWNED,
  BOUNDARY_POLICY,
  type Decision,
  decide,
  GUARDRAIL_POLICY,
  OPERATOR_POLICY,
  OTHER_ACCOUNT,
  type Principal,
  ssmCoreDocument,
  trustingResourcePolicy,
} from './helpers/iam-eval.ts';

// What docs/iam-policy.json (the operator's policy), docs/iam-boundary.json (the agent roles' permissions
// boundary), docs/iam-guardrail.json (the account's guardrail) and the agent role's policies allow and
// deny, request by request, with an IAM policy evaluator that understands resources,
// policy variables and conditions (helpers/iam-eval.ts). moto's enforcement (aws-iam-enforced.test.ts)
// proves the CLIs need no action outside the policy; this file proves what the resources and conditions
// let through. Context keys that AWS derives from a request (the tags on a resource, the tags and the
// boundary a request sets, the service a role is passed to) are given here as AWS would set them.

const P = 'aws';
const REGION = 'us-east-1';
const operator: Principal = {
  arn: `arn:aws:iam::${ACCOUNT}:user/operator`,
  policies: [{ name: 'random-number-operator', policy: OPERATOR_POLICY }],
};
const ours = { [`aws:ResourceTag/${CREATED_BY_TAG.Key}`]: CREATED_BY_TAG.Value };
const oursForSsm = { [`ssm:resourceTag/${CREATED_BY_TAG.Key}`]: CREATED_BY_TAG.Value };
const tagging = {
  [`aws:RequestTag/${CREATED_BY_TAG.Key}`]: CREATED_BY_TAG.Value,
  'aws:TagKeys': ['Name', 'Project', CREATED_BY_TAG.Key],
};
const boundary = boundaryArn(P, ACCOUNT);
const withBoundary = { 'iam:PermissionsBoundary': boundary };

const arn = {
  role: (name = 'rn-agent', account = ACCOUNT, path = '/random-number/') =>
    `arn:${P}:iam::${account}:role${path}${name}`,
  profile: (name = 'rn-agent', account = ACCOUNT, path = '/random-number/') =>
    `arn:${P}:iam::${account}:instance-profile${path}${name}`,
  ec2: (type: string, id: string, account = ACCOUNT) => `arn:${P}:ec2:${REGION}:${account}:${type}/${id}`,
  parameter: (name: string, account = ACCOUNT) => parameterArn(P, REGION, account, name),
};
const token = '/random-number/rn/api-token';
// What AWS adds to every request made with the credentials an instance gets from its instance profile.
const onInstance = { 'ec2:SourceInstanceARN': arn.ec2('instance', 'i-0123456789abcdef0') };
const awsDocument = (name: string, partition = P, region = REGION) =>
  `arn:${partition}:ssm:${region}:${AWS_OWNED}:document/${name}`;
const publicParameter = (name: string) => `arn:${P}:ssm:${REGION}:${AWS_OWNED}:parameter${name}`;
// A customer managed key's default key policy: it lets IAM policies in the account decide.
const keyPolicy = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' },
  ],
};

type Case = [action: string, resource: string, context?: Record<string, string | string[]>];

/**
 * The keys AWS sets on the instance of a RunInstances request, read from the request launchInstances
 * (scripts/aws/instances.ts) actually sends: its tags, instance type, IMDS setting and instance profile
 * (which ensureInstanceProfile makes under IAM_PATH).
 */
async function launchContext(instanceType: string) {
  const client = new EC2Client({ region: REGION });
  const mock = mockClient(client);
  mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-1' }] });
  await launchInstances(client, {
    name: 'rn',
    count: 1,
    ami: { imageId: 'ami-1', rootDeviceName: '/dev/xvda' },
    instanceType,
    instanceProfileName: roleName('rn'),
    securityGroupId: 'sg-1',
    profileRetry: { delaySeconds: 1, maxWaitSeconds: 1 },
  });
  const input = mock.commandCalls(RunInstancesCommand)[0]?.args[0].input;
  mock.restore();
  const tags = input?.TagSpecifications?.find((s) => s.ResourceType === 'instance')?.Tags ?? [];
  const context: Record<string, string | string[]> = {
    ...Object.fromEntries(tags.map((tag) => [`aws:RequestTag/${tag.Key}`, tag.Value as string])),
    'aws:TagKeys': tags.map((tag) => tag.Key as string),
    'ec2:InstanceType': input?.InstanceType as string,
    // Unset, an instance takes the account's default, which is IMDSv1 allowed unless changed.
    'ec2:MetadataHttpTokens': input?.MetadataOptions?.HttpTokens ?? 'optional',
  };
  const profile = input?.IamInstanceProfile?.Name;
  if (profile) context['ec2:InstanceProfile'] = arn.profile(profile, ACCOUNT, IAM_PATH);
  return context;
}
const launching = await launchContext(parseInstanceType());

async function expectAll(
  t: Test,
  who: Principal,
  expected: Decision | 'denied',
  cases: Case[],
  options: { resourcePolicy?: unknown; scps?: unknown[] } = {},
) {
  for (const [action, resource, context] of cases) {
    const decision = await decide(who, action, resource, context, options);
    const ok = expected === 'denied' ? decision !== 'Allowed' : decision === expected;
    t.ok(ok, `${action} on ${resource}${context ? ` ${JSON.stringify(context)}` : ''}: ${decision}`);
  }
}

t.test(
  'the file is one customer managed policy that fits IAM limits and uses no fixed partition or account',
  async (t) => {
    const text = readFileSync('docs/iam-policy.json', 'utf8');
    const size = text.replace(/\s/g, '').length;
    t.ok(size <= 6144, `${size} characters without white space: within a managed policy's 6,144`);
    t.ok(
      size > 2048,
      'too large for an inline user policy (2,048): it must be a managed policy, as the README says',
    );
    t.notMatch(
      text,
      /arn:aws(-[a-z]+)?:/,
      'no ARN names a partition: arn:*: works in aws, aws-us-gov and aws-cn',
    );
    t.notMatch(text, /\d{12}/, 'no account id: the account comes from aws:PrincipalAccount');
    const onEverything = OPERATOR_POLICY.Statement.filter((s) => s.Resource === '*').flatMap((s) => [
      s.Action,
    ]);
    t.ok(onEverything.length > 0, 'some actions (the lookups) are on "*"');
    for (const action of onEverything.flat()) {
      t.match(action, /^(ec2|ssm):(Describe|Get|List)/, `${action}, on "*", only reads`);
    }
    const sids = OPERATOR_POLICY.Statement.map((s) => s.Sid);
    t.equal(new Set(sids).size, sids.length, 'every statement has its own Sid');
    const readme = readFileSync('README.md', 'utf8');
    t.notMatch(readme, /"Statement"/, 'README.md holds no copy of a policy: it links docs/iam-policy.json');
    t.match(readme, 'docs/iam-policy.json', 'README.md links the file');
  },
);

t.test(
  'the operator may do what provision-ec2, ec2-results, teardown-ec2 and aws ssm send-command do',
  async (t) => {
    await expectAll(t, operator, 'Allowed', [
      ['iam:GetPolicy', boundary],
      ['iam:GetRole', arn.role('rn-agent', ACCOUNT, '/')], // a role that may not exist yet: found by name
      ['iam:GetRole', arn.role()],
      ['iam:GetInstanceProfile', arn.profile()],
      ['iam:CreateRole', arn.role(), { ...withBoundary, ...tagging }],
      ['iam:TagRole', arn.role(), tagging],
      ['iam:ListAttachedRolePolicies', arn.role()],
      ['iam:ListRolePolicies', arn.role()],
      ['iam:AttachRolePolicy', arn.role(), { ...withBoundary, 'iam:PolicyARN': ssmCorePolicyArn(P) }],
      ['iam:PutRolePolicy', arn.role(), withBoundary],
      ['iam:CreateInstanceProfile', arn.profile(), tagging],
      ['iam:TagInstanceProfile', arn.profile(), tagging],
      ['iam:AddRoleToInstanceProfile', arn.profile()],
      ['iam:PassRole', arn.role(), { 'iam:PassedToService': 'ec2.amazonaws.com' }],
      ['ec2:DescribeVpcs', '*'],
      ['ec2:DescribeSubnets', '*'],
      ['ec2:DescribeImages', '*'],
      ['ec2:DescribeInstances', '*'],
      ['ec2:DescribeSecurityGroups', '*'],
      [
        'ssm:GetParameter',
        publicParameter('/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64'),
      ],
      ['ssm:GetParameterHistory', arn.parameter(token)],
      ['ssm:PutParameter', arn.parameter(token), tagging],
      ['ssm:AddTagsToResource', arn.parameter(token), tagging],
      ['ssm:GetParameter', arn.parameter(token)],
      ['ssm:ListTagsForResource', arn.parameter(token)],
      ['ec2:CreateSecurityGroup', arn.ec2('security-group', 'sg-1'), tagging],
      ['ec2:CreateSecurityGroup', arn.ec2('vpc', 'vpc-1')],
      [
        'ec2:CreateTags',
        arn.ec2('security-group', 'sg-1'),
        { ...tagging, 'ec2:CreateAction': 'CreateSecurityGroup' },
      ],
      ['ec2:RunInstances', arn.ec2('instance', '*'), launching],
      ['ec2:RunInstances', arn.ec2('volume', '*'), tagging],
      ['ec2:RunInstances', arn.ec2('network-interface', '*')],
      ['ec2:RunInstances', arn.ec2('subnet', 'subnet-1')],
      ['ec2:RunInstances', arn.ec2('security-group', 'sg-1'), ours],
      ['ec2:RunInstances', `arn:${P}:ec2:${REGION}::image/ami-0123456789abcdef0`, { 'ec2:Owner': 'amazon' }],
      ['ec2:CreateTags', arn.ec2('instance', 'i-1'), { ...tagging, 'ec2:CreateAction': 'RunInstances' }],
      ['ec2:CreateTags', arn.ec2('volume', 'vol-1'), { ...tagging, 'ec2:CreateAction': 'RunInstances' }],
      ['ec2:StartInstances', arn.ec2('instance', 'i-1'), ours],
      ['ssm:DescribeInstanceInformation', '*'],
      ['ssm:SendCommand', awsDocument('AWS-RunShellScript')],
      ['ssm:SendCommand', arn.ec2('instance', 'i-1'), oursForSsm],
      ['ssm:GetCommandInvocation', '*'],
      ['ssm:ListCommandInvocations', '*'],
      ['ec2:TerminateInstances', arn.ec2('instance', 'i-1'), ours],
      ['ec2:DeleteSecurityGroup', arn.ec2('security-group', 'sg-1'), ours],
      ['iam:RemoveRoleFromInstanceProfile', arn.profile()],
      ['iam:DeleteInstanceProfile', arn.profile()],
      ['iam:DetachRolePolicy', arn.role(), { ...withBoundary, 'iam:PolicyARN': ssmCorePolicyArn(P) }],
      ['iam:DeleteRolePolicy', arn.role(), withBoundary],
      ['iam:DeleteRole', arn.role(), withBoundary],
      ['ssm:DeleteParameter', arn.parameter(token)],
    ]);
  },
);

t.test('the same policy works in GovCloud and China: ARNs there carry their own partition', async (t) => {
  t.equal(partitionOf('arn:aws-us-gov:iam::123456789012:user/me'), 'aws-us-gov', 'partition from the caller');
  t.equal(partitionOf('arn:aws-cn:iam::123456789012:user/me'), 'aws-cn', 'China');
  t.equal(partitionOf(''), 'aws', 'no ARN (an emulator may send none): the commercial partition');
  for (const [partition, region] of [
    ['aws-us-gov', 'us-gov-west-1'],
    ['aws-cn', 'cn-north-1'],
  ] as const) {
    const who = { ...operator, arn: `arn:${partition}:iam::${ACCOUNT}:user/operator` };
    const role = `arn:${partition}:iam::${ACCOUNT}:role/random-number/rn-agent`;
    const bound = { 'iam:PermissionsBoundary': boundaryArn(partition, ACCOUNT) };
    await expectAll(t, who, 'Allowed', [
      ['iam:CreateRole', role, { ...bound, ...tagging }],
      ['iam:AttachRolePolicy', role, { ...bound, 'iam:PolicyARN': ssmCorePolicyArn(partition) }],
      [
        'iam:PassRole',
        role,
        { 'iam:PassedToService': partition === 'aws-cn' ? 'ec2.amazonaws.com.cn' : 'ec2.amazonaws.com' },
      ],
      ['ssm:PutParameter', parameterArn(partition, region, ACCOUNT, token), tagging],
      ['ssm:SendCommand', awsDocument('AWS-RunShellScript', partition, region)],
      ['ec2:TerminateInstances', `arn:${partition}:ec2:${region}:${ACCOUNT}:instance/i-1`, ours],
    ]);
  }
});

t.test('the operator may not escalate through the agent role', async (t) => {
  await expectAll(t, operator, 'denied', [
    // attaching any managed policy but the one the agent needs
    [
      'iam:AttachRolePolicy',
      arn.role(),
      { ...withBoundary, 'iam:PolicyARN': `arn:${P}:iam::aws:policy/AdministratorAccess` },
    ],
    [
      'iam:AttachRolePolicy',
      arn.role(),
      { ...withBoundary, 'iam:PolicyARN': `arn:${P}:iam::${ACCOUNT}:policy/mine` },
    ],
    // ... or attaching even that one to a role without the boundary, or outside the project's path
    ['iam:AttachRolePolicy', arn.role(), { 'iam:PolicyARN': ssmCorePolicyArn(P) }],
    [
      'iam:AttachRolePolicy',
      arn.role('anything-agent', ACCOUNT, '/'),
      { ...withBoundary, 'iam:PolicyARN': ssmCorePolicyArn(P) },
    ],
    // writing inline policies on a role without the boundary (with it, the boundary caps them: below)
    ['iam:PutRolePolicy', arn.role()],
    ['iam:PutRolePolicy', arn.role('anything-agent', ACCOUNT, '/'), withBoundary],
    [
      'iam:PutRolePolicy',
      arn.role(),
      { 'iam:PermissionsBoundary': `arn:${P}:iam::${ACCOUNT}:policy/random-number/other` },
    ],
    // creating a role without the boundary, with another one, or elsewhere
    ['iam:CreateRole', arn.role(), tagging],
    [
      'iam:CreateRole',
      arn.role(),
      { ...tagging, 'iam:PermissionsBoundary': `arn:${P}:iam::aws:policy/AdministratorAccess` },
    ],
    ['iam:CreateRole', arn.role('rn-agent', ACCOUNT, '/'), { ...withBoundary, ...tagging }],
    // removing or replacing the boundary of a role
    ['iam:DeleteRolePermissionsBoundary', arn.role(), withBoundary],
    [
      'iam:PutRolePermissionsBoundary',
      arn.role(),
      { 'iam:PermissionsBoundary': `arn:${P}:iam::aws:policy/AdministratorAccess` },
    ],
    ['iam:UpdateAssumeRolePolicy', arn.role()],
    // passing a role that is not a project agent role, or to another service
    [
      'iam:PassRole',
      arn.role('anything-agent', ACCOUNT, '/'),
      { 'iam:PassedToService': 'ec2.amazonaws.com' },
    ],
    ['iam:PassRole', arn.role('admin', ACCOUNT, '/'), { 'iam:PassedToService': 'ec2.amazonaws.com' }],
    ['iam:PassRole', arn.role(), { 'iam:PassedToService': 'lambda.amazonaws.com' }],
    ['iam:PassRole', arn.role(), { 'iam:PassedToService': 'ssm.amazonaws.com' }],
    ['iam:DeleteRole', arn.role('anything-agent', ACCOUNT, '/')],
    // tagging, listing or rewiring a role or an instance profile outside the project's path
    ['iam:TagRole', arn.role('rn-agent', ACCOUNT, '/'), tagging],
    ['iam:ListRolePolicies', arn.role('rn-agent', ACCOUNT, '/')],
    ['iam:ListAttachedRolePolicies', arn.role('rn-agent', ACCOUNT, '/')],
    ['iam:DeleteInstanceProfile', arn.profile('rn-agent', ACCOUNT, '/')],
    ['iam:RemoveRoleFromInstanceProfile', arn.profile('rn-agent', ACCOUNT, '/')],
    ['iam:AddRoleToInstanceProfile', arn.profile('rn-agent', ACCOUNT, '/')],
    ['iam:TagInstanceProfile', arn.profile('rn-agent', ACCOUNT, '/'), tagging],
    // reading any policy but the boundary
    ['iam:GetPolicy', `arn:${P}:iam::${ACCOUNT}:policy/random-number/other`],
    ['iam:GetPolicy', `arn:${P}:iam::${ACCOUNT}:policy/mine`],
    ['iam:CreateUser', `arn:${P}:iam::${ACCOUNT}:user/me`],
    ['iam:CreatePolicyVersion', boundary],
  ]);
});

t.test('the operator may touch only the project instances, security groups and parameters', async (t) => {
  const theirs = { [`aws:ResourceTag/${CREATED_BY_TAG.Key}`]: 'someone-else' };
  await expectAll(t, operator, 'denied', [
    // Run Command: another document, or an instance without our tag
    ['ssm:SendCommand', awsDocument('AWS-RunPowerShellScript')],
    ['ssm:SendCommand', awsDocument('AWS-RunRemoteScript')],
    ['ssm:SendCommand', `arn:${P}:ssm:${REGION}:${ACCOUNT}:document/RunShellScript`],
    ['ssm:SendCommand', arn.ec2('instance', 'i-theirs')],
    ['ssm:SendCommand', arn.ec2('instance', 'i-theirs'), { [`ssm:resourceTag/${CREATED_BY_TAG.Key}`]: 'x' }],
    ['ssm:StartSession', arn.ec2('instance', 'i-1'), oursForSsm],
    // instances and security groups not ours
    ['ec2:TerminateInstances', arn.ec2('instance', 'i-theirs')],
    ['ec2:TerminateInstances', arn.ec2('instance', 'i-theirs'), theirs],
    ['ec2:StartInstances', arn.ec2('instance', 'i-theirs')],
    ['ec2:StopInstances', arn.ec2('instance', 'i-1'), ours],
    ['ec2:DeleteSecurityGroup', arn.ec2('security-group', 'sg-theirs')],
    ['ec2:AuthorizeSecurityGroupIngress', arn.ec2('security-group', 'sg-1'), ours],
    ['ec2:ModifyInstanceAttribute', arn.ec2('instance', 'i-1'), ours],
    // retagging: CreateTags only while creating, so our tag cannot be put on someone else's resource
    ['ec2:CreateTags', arn.ec2('instance', 'i-theirs'), tagging],
    ['ec2:CreateTags', arn.ec2('security-group', 'sg-theirs'), tagging],
    ['ec2:CreateTags', arn.ec2('instance', 'i-theirs'), { ...tagging, 'ec2:CreateAction': 'CreateVolume' }],
    ['ec2:DeleteTags', arn.ec2('instance', 'i-1'), ours],
    // launching untagged instances, or with a security group not ours
    ['ec2:RunInstances', arn.ec2('instance', '*')],
    ['ec2:RunInstances', arn.ec2('instance', '*'), { ...launching, 'aws:RequestTag/CreatedBy': 'x' }],
    ['ec2:RunInstances', arn.ec2('volume', '*')],
    ['ec2:RunInstances', arn.ec2('security-group', 'sg-theirs')],
    ['ec2:CreateSecurityGroup', arn.ec2('security-group', 'sg-2')],
    // parameters outside /random-number/
    ['ssm:GetParameter', arn.parameter('/prod/db-password')],
    ['ssm:GetParameter', arn.parameter('/random-numberX/api-token')],
    ['ssm:GetParameters', arn.parameter(token)],
    ['ssm:GetParametersByPath', arn.parameter('/prod')],
    ['ssm:GetParameterHistory', arn.parameter('/prod/db-password')],
    ['ssm:DescribeParameters', '*'],
    ['ssm:PutParameter', arn.parameter('/prod/db-password')],
    ['ssm:DeleteParameter', arn.parameter('/prod/db-password')],
    ['ssm:AddTagsToResource', arn.parameter('/prod/db-password'), tagging],
    ['ssm:GetParameter', publicParameter('/aws/service/global-infrastructure/regions')],
  ]);
});

t.test('the operator may launch only what provision-ec2 launches', async (t) => {
  const sizes = OPERATOR_POLICY.Statement.flatMap(
    (s) => s.Condition?.StringEquals?.['ec2:InstanceType'] ?? [],
  );
  t.ok(sizes.includes(parseInstanceType()), `the default, ${parseInstanceType()}, is one of ${sizes}`);
  t.ok(sizes.some(isGraviton), 'so is a Graviton size (the arm64 AMI)');
  for (const size of sizes) {
    await expectAll(t, operator, 'Allowed', [
      ['ec2:RunInstances', arn.ec2('instance', '*'), await launchContext(size)],
    ]);
  }
  const image = `arn:${P}:ec2:${REGION}::image/ami-0123456789abcdef0`;
  const { 'ec2:InstanceProfile': _, ...noProfile } = launching;
  await expectAll(t, operator, 'denied', [
    // larger or other instance types, as provision-ec2 --instance-type would send them
    ['ec2:RunInstances', arn.ec2('instance', '*'), await launchContext('t3.medium')],
    ['ec2:RunInstances', arn.ec2('instance', '*'), await launchContext('m7g.large')],
    ['ec2:RunInstances', arn.ec2('instance', '*'), await launchContext('p5.48xlarge')],
    // IMDSv1 allowed
    ['ec2:RunInstances', arn.ec2('instance', '*'), { ...launching, 'ec2:MetadataHttpTokens': 'optional' }],
    // no instance profile, or one that is not a project agent's
    ['ec2:RunInstances', arn.ec2('instance', '*'), noProfile],
    [
      'ec2:RunInstances',
      arn.ec2('instance', '*'),
      { ...launching, 'ec2:InstanceProfile': arn.profile('admin', ACCOUNT, '/') },
    ],
    [
      'ec2:RunInstances',
      arn.ec2('instance', '*'),
      { ...launching, 'ec2:InstanceProfile': arn.profile('rn-agent', ACCOUNT, '/other/') },
    ],
    // an image not owned by Amazon: the Marketplace, this account, any other account, or unknown
    ['ec2:RunInstances', image, { 'ec2:Owner': 'aws-marketplace' }],
    ['ec2:RunInstances', image, { 'ec2:Owner': ACCOUNT }],
    ['ec2:RunInstances', image, { 'ec2:Owner': OTHER_ACCOUNT }],
    ['ec2:RunInstances', image],
  ]);
});

t.test(
  "the operator may do nothing to another account's resources, even one that trusts it fully",
  async (t) => {
    const trusting = { resourcePolicy: trustingResourcePolicy(ACCOUNT) };
    await expectAll(
      t,
      operator,
      'denied',
      [
        ['ssm:GetParameter', arn.parameter(token, OTHER_ACCOUNT)],
        ['ssm:PutParameter', arn.parameter(token, OTHER_ACCOUNT), tagging],
        ['ssm:DeleteParameter', arn.parameter(token, OTHER_ACCOUNT)],
        ['ssm:SendCommand', arn.ec2('instance', 'i-1', OTHER_ACCOUNT), oursForSsm],
        ['ec2:TerminateInstances', arn.ec2('instance', 'i-1', OTHER_ACCOUNT), ours],
        ['ec2:StartInstances', arn.ec2('instance', 'i-1', OTHER_ACCOUNT), ours],
        ['ec2:DeleteSecurityGroup', arn.ec2('security-group', 'sg-1', OTHER_ACCOUNT), ours],
        ['ec2:RunInstances', arn.ec2('subnet', 'subnet-1', OTHER_ACCOUNT)],
        ['ec2:RunInstances', arn.ec2('security-group', 'sg-1', OTHER_ACCOUNT), ours],
        ['iam:PassRole', arn.role('rn-agent', OTHER_ACCOUNT), { 'iam:PassedToService': 'ec2.amazonaws.com' }],
        ['iam:GetRole', arn.role('rn-agent', OTHER_ACCOUNT)],
        ['iam:GetPolicy', boundaryArn(P, OTHER_ACCOUNT)],
        ['iam:TagRole', arn.role('rn-agent', OTHER_ACCOUNT), tagging],
      ],
      trusting,
    );
    // Control: the same trusting resource policy does let the operator's own-account requests through,
    // and a policy with Resource "*" (the one this replaces) would have been allowed across accounts.
    const wide: Principal = {
      arn: operator.arn,
      policies: [
        {
          name: 'wide',
          policy: {
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow', Action: 'ssm:GetParameter', Resource: '*' }],
          },
        },
      ],
    };
    t.equal(
      await decide(wide, 'ssm:GetParameter', arn.parameter(token, OTHER_ACCOUNT), {}, trusting),
      'Allowed',
      'control: Resource "*" plus a trusting account is allowed, so the denials above come from our policy',
    );
  },
);

t.test('control: the policy this replaces allowed what the one above denies', async (t) => {
  // The README's policy before this change, abridged to the statements that mattered.
  const old: Principal = {
    arn: operator.arn,
    policies: [
      {
        name: 'old',
        policy: {
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: ['ec2:TerminateInstances', 'ec2:CreateTags'], Resource: '*' },
            {
              Effect: 'Allow',
              Action: ['iam:AttachRolePolicy', 'iam:PutRolePolicy'],
              Resource: 'arn:aws:iam::*:role/*-agent',
            },
            { Effect: 'Allow', Action: ['ssm:SendCommand', 'ssm:GetParameter'], Resource: '*' },
          ],
        },
      },
    ],
  };
  await expectAll(t, old, 'Allowed', [
    [
      'iam:AttachRolePolicy',
      arn.role('anything-agent', ACCOUNT, '/'),
      { 'iam:PolicyARN': `arn:${P}:iam::aws:policy/AdministratorAccess` },
    ],
    ['ec2:TerminateInstances', arn.ec2('instance', 'i-theirs')],
    ['ssm:SendCommand', arn.ec2('instance', 'i-theirs')],
    ['ssm:GetParameter', arn.parameter('/prod/db-password')],
  ]);
});

t.test('the agent role: Run Command, and exactly its token parameter', async (t) => {
  const core = { name: 'AmazonSSMManagedInstanceCore', policy: ssmCoreDocument() };
  const role = `arn:${P}:iam::${ACCOUNT}:role/random-number/rn-agent`;
  const agent = (inline: unknown, tokenParameter?: string): Principal => ({
    arn: role,
    policies: [core, { name: 'agent-parameters', policy: inline }],
    boundary: BOUNDARY_POLICY,
    tags: { Project: 'rn', ...(tokenParameter ? { [TOKEN_TAG]: tokenTagValue(tokenParameter) } : {}) },
    session: onInstance,
  });
  const input = { partition: P, region: REGION, account: ACCOUNT };
  const asKey = { resourcePolicy: keyPolicy };
  const withToken = agent(agentPolicyDocument({ ...input, tokenArn: arn.parameter(token) }), token);
  await expectAll(t, withToken, 'Allowed', [
    ['ssm:GetParameter', arn.parameter(token)],
    ['ssm:UpdateInstanceInformation', '*'],
    ['ec2messages:GetMessages', '*'],
    ['ssmmessages:OpenControlChannel', '*'],
  ]);
  await expectAll(t, withToken, 'denied', [
    ['ssm:GetParameter', arn.parameter('/random-number/other/api-token')],
    ['ssm:GetParameter', arn.parameter('/prod/db-password')],
    ['ssm:GetParameters', arn.parameter('/prod/db-password')],
    ['ssm:GetParametersByPath', arn.parameter('/random-number')],
    ['ssm:SendCommand', arn.ec2('instance', 'i-1'), oursForSsm],
    ['ec2:TerminateInstances', arn.ec2('instance', 'i-1'), ours],
    ['iam:PassRole', role, { 'iam:PassedToService': 'ec2.amazonaws.com' }],
  ]);

  // The default aws/ssm key needs no IAM permission (its key policy lets SSM use it for the account):
  // without a customer key the role gets no kms:Decrypt at all.
  await expectAll(
    t,
    withToken,
    'denied',
    [
      [
        'kms:Decrypt',
        `arn:${P}:kms:${REGION}:${ACCOUNT}:key/k`,
        { 'kms:ViaService': ssmViaService(P, REGION) },
      ],
    ],
    asKey,
  );

  const none = agent(agentPolicyDocument(input));
  await expectAll(t, none, 'denied', [
    ['ssm:GetParameter', arn.parameter(token)],
    ['ssm:GetParameter', arn.parameter('/prod/db-password')],
  ]);
  await expectAll(t, none, 'Allowed', [['ssm:UpdateInstanceInformation', '*']]);

  // A customer managed key: kms:Decrypt on that key, and only when SSM asks on the agent's behalf.
  const key = `arn:${P}:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  for (const keyId of [key, '1234abcd-12ab-34cd-56ef-1234567890ab']) {
    const cmk = agent(agentPolicyDocument({ ...input, tokenArn: arn.parameter(token), keyId }), token);
    await expectAll(
      t,
      cmk,
      'Allowed',
      [['kms:Decrypt', key, { 'kms:ViaService': ssmViaService(P, REGION) }]],
      asKey,
    );
    await expectAll(
      t,
      cmk,
      'denied',
      [
        ['kms:Decrypt', key],
        ['kms:Decrypt', key, { 'kms:ViaService': `s3.${REGION}.amazonaws.com` }],
        [
          'kms:Decrypt',
          `arn:${P}:kms:${REGION}:${ACCOUNT}:key/another`,
          { 'kms:ViaService': ssmViaService(P, REGION) },
        ],
      ],
      asKey,
    );
  }
  const byAlias = agent(
    agentPolicyDocument({ ...input, tokenArn: arn.parameter(token), keyId: 'alias/tokens' }),
    token,
  );
  // Through SSM, with the key named by its alias: decrypts under that alias only.
  const viaAlias = (alias: string) => ({
    'kms:ViaService': ssmViaService(P, REGION),
    'kms:ResourceAliases': [alias],
  });
  await expectAll(t, byAlias, 'Allowed', [['kms:Decrypt', key, viaAlias('alias/tokens')]], asKey);
  await expectAll(t, byAlias, 'denied', [['kms:Decrypt', key, viaAlias('alias/other')]], asKey);
  t.equal(
    ssmViaService('aws-cn', 'cn-north-1'),
    'ssm.cn-north-1.amazonaws.com.cn',
    'China names SSM with .cn',
  );
});

t.test('whatever the operator writes or attaches, the boundary caps the agent role', async (t) => {
  // The worst the operator policy allows: any inline policy on a role that carries the boundary.
  const everything = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };
  const written = (tokenParameter?: string): Principal => ({
    arn: `arn:${P}:iam::${ACCOUNT}:role/random-number/rn-agent`,
    policies: [{ name: 'written-by-operator', policy: everything }],
    boundary: BOUNDARY_POLICY,
    tags: tokenParameter ? { [TOKEN_TAG]: tokenTagValue(tokenParameter) } : {},
    session: onInstance,
  });
  const agent = written(token);
  await expectAll(t, agent, 'denied', [
    ['iam:CreateUser', `arn:${P}:iam::${ACCOUNT}:user/me`],
    ['iam:AttachRolePolicy', `arn:${P}:iam::${ACCOUNT}:role/admin`],
    ['ssm:GetParameter', arn.parameter('/prod/db-password')],
    ['ssm:SendCommand', arn.ec2('instance', 'i-1')],
    ['ssm:PutParameter', arn.parameter(token)],
    ['ec2:TerminateInstances', arn.ec2('instance', 'i-1')],
    ['s3:GetObject', 'arn:aws:s3:::bucket/key'],
    ['sts:AssumeRole', `arn:${P}:iam::${ACCOUNT}:role/admin`],
    ['ssm:GetParameter', arn.parameter('/random-number/other/api-token')],
    ['ssm:GetParameters', arn.parameter(token)],
  ]);
  // What remains: Run Command, and reading the one parameter the role's tag names.
  await expectAll(t, agent, 'Allowed', [
    ['ssm:GetParameter', arn.parameter(token)],
    ['ssm:UpdateInstanceInformation', '*'],
  ]);
  // The operator may retag the role (to switch tokens); a tag naming a parameter outside the project
  // still reads nothing, and a role without the tag reads no parameter at all.
  await expectAll(t, written('/prod/db-password'), 'denied', [
    ['ssm:GetParameter', arn.parameter('/prod/db-password')],
  ]);
  await expectAll(t, written(), 'denied', [['ssm:GetParameter', arn.parameter(token)]]);
  t.equal(BOUNDARY_NAME, 'random-number-agent-boundary', 'the name docs/iam-policy.json requires');
  t.match(
    JSON.stringify(OPERATOR_POLICY),
    `policy/random-number/${BOUNDARY_NAME}`,
    'and the policy names it',
  );
});

t.test('the agent role does nothing away from an instance it was delivered to', async (t) => {
  const core = { name: 'AmazonSSMManagedInstanceCore', policy: ssmCoreDocument() };
  const input = { partition: P, region: REGION, account: ACCOUNT };
  const key = `arn:${P}:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  const inline = agentPolicyDocument({ ...input, tokenArn: arn.parameter(token), keyId: key });
  const role = (boundary: unknown, session?: Record<string, string>): Principal => ({
    arn: `arn:${P}:iam::${ACCOUNT}:role/random-number/rn-agent`,
    policies: [core, { name: 'agent-parameters', policy: inline }],
    boundary,
    tags: { Project: 'rn', [TOKEN_TAG]: tokenTagValue(token) },
    ...(session ? { session } : {}),
  });
  // SSM decrypting the token for the agent: a request KMS receives from SSM, on the agent's behalf.
  const viaSsm = { 'kms:ViaService': ssmViaService(P, REGION), 'aws:ViaAWSService': 'true' };
  const asKey = { resourcePolicy: keyPolicy };
  await expectAll(t, role(BOUNDARY_POLICY, onInstance), 'Allowed', [
    ['ssm:GetParameter', arn.parameter(token)],
    ['ssm:UpdateInstanceInformation', '*'],
    ['ec2messages:GetMessages', '*'],
  ]);
  await expectAll(t, role(BOUNDARY_POLICY, onInstance), 'Allowed', [['kms:Decrypt', key, viaSsm]], asKey);
  await expectAll(t, role(BOUNDARY_POLICY, onInstance), 'denied', [
    ['ssm:GetParameter', arn.parameter('/random-number/other/api-token')],
    ['ssm:GetParameter', arn.parameter('/random-number/rn/api-token', OTHER_ACCOUNT)],
  ]);
  // The same role's credentials anywhere else: taken off the instance, or from a trust policy the
  // operator wrote for someone to assume it.
  const away = [
    ['ssm:GetParameter', arn.parameter(token)],
    ['ssm:UpdateInstanceInformation', '*'],
    ['ec2messages:GetMessages', '*'],
    ['ssmmessages:OpenControlChannel', '*'],
  ] satisfies Case[];
  await expectAll(t, role(BOUNDARY_POLICY), 'denied', away);
  // KMS itself, asked directly. (What a service asks on the role's behalf, SSM decrypting the token, is
  // not refused for lacking the key: the request that would start it, GetParameter, already is.)
  await expectAll(t, role(BOUNDARY_POLICY), 'denied', [['kms:Decrypt', key]], asKey);
  const everything = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };
  await expectAll(
    t,
    { ...role(BOUNDARY_POLICY), policies: [{ name: 'written-by-operator', policy: everything }] },
    'denied',
    away,
  );
  // Control: the boundary without its first statement lets the same requests through.
  const without = {
    ...BOUNDARY_POLICY,
    Statement: BOUNDARY_POLICY.Statement.filter((s) => s.Sid !== 'NothingAwayFromItsInstances'),
  };
  t.equal(without.Statement.length, BOUNDARY_POLICY.Statement.length - 1, 'control: one statement less');
  await expectAll(t, role(without), 'Allowed', away);
});

t.test('the boundary file: one reviewable document, as iam-bootstrap applies it', async (t) => {
  const text = readFileSync('docs/iam-boundary.json', 'utf8');
  const size = text.replace(/\s/g, '').length;
  t.ok(size <= 6144, `${size} characters without white space: within a managed policy's 6,144`);
  t.notMatch(text, /arn:aws(-[a-z]+)?:/, 'no ARN names a partition');
  t.notMatch(text, /\d{12}/, 'no account id: the same document in every account');
  const core = ssmCoreDocument() as { Statement: { Action: string[] }[] };
  const coreActions = core.Statement.flatMap((s) => s.Action);
  const runCommand = BOUNDARY_POLICY.Statement.find((s) => s.Sid === 'RunCommandAgent')?.Action;
  t.same(
    [runCommand].flat().sort(),
    coreActions.filter((a) => !/^ssm:GetParameters?$/.test(a)).sort(),
    "AmazonSSMManagedInstanceCore's actions, as AWS publishes them, but reading parameters",
  );
  t.match(
    text,
    `\${aws:PrincipalTag/${TOKEN_TAG}}`,
    'the token parameter comes from the tag provision-ec2 sets',
  );
  t.match(text, `parameter${PARAMETER_PREFIX}*`, 'and is under the prefix provision-ec2 uses');
});

t.test('with the guardrail, no one else can set or remove CreatedBy on what exists', async (t) => {
  // Another principal of the account, with EC2 tagging on everything (as AmazonEC2FullAccess gives).
  const other: Principal = {
    arn: `arn:${P}:iam::${ACCOUNT}:user/ec2-admin`,
    policies: [
      {
        name: 'ec2-admin',
        policy: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: ['ec2:CreateTags', 'ec2:DeleteTags', 'ec2:RunInstances'],
              Resource: '*',
            },
          ],
        },
      },
    ],
  };
  const production = arn.ec2('instance', 'i-production');
  const set = (key: string) => ({
    [`aws:RequestTag/${key}`]: CREATED_BY_TAG.Value,
    'aws:TagKeys': ['Name', key],
  });
  const adopt: Case[] = [
    ['ec2:CreateTags', production, set(CREATED_BY_TAG.Key)],
    // IAM matches a tag key in a condition key whatever its case: createdby would pass for CreatedBy
    ['ec2:CreateTags', production, set('createdby')],
    ['ec2:CreateTags', arn.ec2('security-group', 'sg-production'), set(CREATED_BY_TAG.Key)],
    // removing it, by name or with every tag (DeleteTags without keys)
    ['ec2:DeleteTags', production, { ...ours, 'aws:TagKeys': [CREATED_BY_TAG.Key] }],
    ['ec2:DeleteTags', production, ours],
  ];
  const guarded = { scps: [GUARDRAIL_POLICY] };
  await expectAll(t, other, 'ExplicitlyDenied', adopt, guarded);
  await expectAll(
    t,
    other,
    'Allowed',
    [
      // launching with the tag, and tagging while launching
      ['ec2:RunInstances', arn.ec2('instance', '*'), launching],
      ['ec2:CreateTags', arn.ec2('instance', 'i-new'), { ...tagging, 'ec2:CreateAction': 'RunInstances' }],
      // other tags, on any instance, ours too
      ['ec2:CreateTags', production, { 'aws:RequestTag/Owner': 'ops', 'aws:TagKeys': ['Owner'] }],
      ['ec2:CreateTags', production, { ...ours, 'aws:RequestTag/Owner': 'ops', 'aws:TagKeys': ['Owner'] }],
      ['ec2:DeleteTags', production, { ...ours, 'aws:TagKeys': ['Owner'] }],
      ['ec2:DeleteTags', production],
    ],
    guarded,
  );
  // Without Organizations: the same statements in the principal's own policies (or its boundary).
  const self = { ...other, policies: [...other.policies, { name: 'guardrail', policy: GUARDRAIL_POLICY }] };
  await expectAll(t, self, 'ExplicitlyDenied', adopt);
  // Control: without the guardrail, the account's other principals could adopt any instance.
  await expectAll(t, other, 'Allowed', adopt, { scps: [] });
  const text = readFileSync('docs/iam-guardrail.json', 'utf8');
  const size = text.replace(/\s/g, '').length;
  t.ok(size <= 5120, `${size} characters without white space: within a service control policy's 5,120`);
  t.ok(
    GUARDRAIL_POLICY.Statement.every((s) => s.Effect === 'Deny'),
    'only denials: it takes nothing away but the tag',
  );
});
