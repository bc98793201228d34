import { runCli } from '../lib/cli.ts';
import { parseFlags } from './aws/args.ts';

const HELP = `Usage: npm run iam-bootstrap -- [--region REGION] [--profile NAME]

Run once per AWS account by an administrator, before anyone runs provision-ec2 with the operator policy
(docs/iam-policy.json). Creates the IAM policy random-number-agent-boundary under the path
/random-number/ from docs/iam-boundary.json: the permissions boundary every agent role is created with,
which caps what an agent role can ever do, whatever its holder attaches to it, and makes it useless away
from its instances. Safe to run again: it says whether it created the policy, found it up to date, or
updated it. It then prints how to apply the operator policy and the account's guardrail
(docs/iam-guardrail.json), which keeps everyone else from setting or removing the CreatedBy tag.

  --region REGION         any region (IAM is global; STS needs one): default AWS_REGION or your profile's
  --profile NAME          AWS profile for credentials and region, as the AWS CLI uses it (default AWS_PROFILE)
  -h, --help              this text

Credentials come from the usual AWS chain (--profile or AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, ...)
and need iam:GetPolicy, iam:GetPolicyVersion, iam:CreatePolicy, iam:ListPolicyVersions,
iam:CreatePolicyVersion, iam:DeletePolicyVersion and iam:TagPolicy.
`;

const next = (
  account: string,
) => `  next, once: the operator policy, attached to whoever runs provision-ec2 (see docs/iam.md):
    aws iam create-policy --policy-name random-number-operator --policy-document file://docs/iam-policy.json
  and once, the guardrail: no one else may set or remove the CreatedBy tag that policy trusts. With AWS
  Organizations, a service control policy on this account (from the organization's management account):
    aws organizations create-policy --type SERVICE_CONTROL_POLICY --name random-number-guardrail \\
      --description 'CreatedBy only while creating' --content file://docs/iam-guardrail.json
    aws organizations attach-policy --policy-id <the Id it printed> --target-id ${account}
  Without Organizations: its statements in the policies (or permissions boundary) of every other principal
  that may tag EC2 resources.`;

runCli('iam-bootstrap', async () => {
  const flags = parseFlags(process.argv.slice(2), {
    region: { type: 'string' },
    profile: { type: 'string' },
  } as const);
  if (flags.help) return void process.stdout.write(HELP);
  // The AWS SDK takes a second to load: not for --help or a flag error.
  const { startSession } = await import('./aws/report.ts');
  const { ensureBoundary } = await import('./aws/boundary.ts');
  const { iam, report, identity } = await startSession(flags);
  const boundary = await report.step(
    'permissions boundary',
    () => ensureBoundary(iam, identity),
    (b) => `${b.arn} ${b.outcome === 'found' ? 'found, up to date' : b.outcome}`,
  );
  report.line(
    `\ndone: ${boundary.arn} ${boundary.outcome === 'found' ? 'was already there' : boundary.outcome}`,
  );
  report.line(next(identity.account));
});
