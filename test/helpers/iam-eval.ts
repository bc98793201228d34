import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { runSimulation } from '@cloud-copilot/iam-simulate';

/**
 * IAM's decision for one request, from @cloud-copilot/iam-simulate: an evaluator of identity policies,
 * permissions boundaries, resource ARNs (wildcards, policy variables) and every condition operator, with
 * the request's context keys given explicitly. It also validates the policies and the request (action
 * names, the ARN's resource type for the action, the condition keys the action supports): a mistyped
 * action or key is an error here, not a silent "denied".
 */
export type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';

export const ACCOUNT = '111122223333';
export const OTHER_ACCOUNT = '444455556666';
/**
 * AWS's own documents and public parameters have an empty account field in their ARNs, which the
 * evaluator cannot take; this id stands for it, and such resources are given AWS's answer: readable and
 * usable by every account. docs/iam-policy.json names them with account `*` (matching both): names
 * starting with AWS- (documents) and /aws/ (parameters) are reserved for AWS, so no account can make a
 * document or parameter that those statements would also match.
 */
export const AWS_OWNED = '000000000000';
const PUBLIC = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: '*', Action: '*', Resource: '*' }],
};

export interface Principal {
  arn: string;
  policies: { name: string; policy: unknown }[];
  boundary?: unknown;
  /** The principal's tags (a role session carries its role's): aws:PrincipalTag/<key> in every request. */
  tags?: Record<string, string>;
  /**
   * Keys every request of the session carries: `ec2:SourceInstanceARN` when the credentials were
   * delivered to an EC2 instance (its instance profile, through the instance metadata service).
   */
  session?: Record<string, string>;
}

type PolicyFile = {
  Statement: {
    Sid: string;
    Effect: string;
    Action: string | string[];
    Resource: string | string[];
    Condition?: Record<string, Record<string, string | string[]>>;
  }[];
};
const docsFile = (name: string) =>
  JSON.parse(readFileSync(resolve(import.meta.dirname, '../../docs', name), 'utf8')) as PolicyFile;
export const OPERATOR_POLICY = docsFile('iam-policy.json');
export const BOUNDARY_POLICY = docsFile('iam-boundary.json');
export const GUARDRAIL_POLICY = docsFile('iam-guardrail.json');
/** The service control policy every account has unless an administrator removed it. */
const FULL_AWS_ACCESS = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
};

/** AmazonSSMManagedInstanceCore as AWS publishes it (moto ships AWS's managed policies verbatim). */
export function ssmCoreDocument(): unknown {
  const out = execFileSync(
    'python3',
    [
      '-c',
      'import json; from moto.iam.aws_managed_policies import aws_managed_policies_data as d; print(json.dumps(json.loads(d)["AmazonSSMManagedInstanceCore"]["Document"]))',
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(out);
}

/** The account an ARN names ('' for AWS-owned resources such as public AMIs and AWS documents). */
function accountOf(arn: string): string {
  return arn.split(':')[4] ?? '';
}

/**
 * What a resource in another account would say at its most trusting: everything, to our whole account.
 * With it, a cross-account request is decided by our own policy alone (without it, the evaluator denies
 * any cross-account request whatever our policy says, and the check could not fail).
 */
export function trustingResourcePolicy(trusted: string) {
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${trusted}:root` }, Action: '*', Resource: '*' },
    ],
  };
}

export async function decide(
  who: Principal,
  action: string,
  resource: string,
  context: Record<string, string | string[]> = {},
  /** scps: service control policies attached to the account, beside FullAWSAccess. */
  options: { resourcePolicy?: unknown; scps?: unknown[] } = {},
): Promise<Decision> {
  const resourceAccount = accountOf(resource);
  const principalAccount = accountOf(who.arn);
  const response = await runSimulation(
    {
      identityPolicies: who.policies,
      permissionBoundaryPolicies: who.boundary ? [{ name: 'boundary', policy: who.boundary }] : undefined,
      serviceControlPolicies: options.scps
        ? [
            {
              orgIdentifier: principalAccount,
              policies: [FULL_AWS_ACCESS, ...options.scps].map((policy, i) => ({ name: `scp-${i}`, policy })),
            },
          ]
        : [],
      resourceControlPolicies: [],
      resourcePolicy: options.resourcePolicy ?? (resourceAccount === AWS_OWNED ? PUBLIC : undefined),
      request: {
        principal: who.arn,
        action,
        resource: { resource, accountId: resourceAccount || principalAccount },
        contextVariables: {
          'aws:PrincipalAccount': principalAccount,
          'aws:PrincipalArn': who.arn,
          // In every request: true only when a service calls another on the principal's behalf.
          'aws:ViaAWSService': 'false',
          ...who.session,
          ...Object.fromEntries(
            Object.entries(who.tags ?? {}).map(([key, value]) => [`aws:PrincipalTag/${key}`, value]),
          ),
          ...(resourceAccount && resourceAccount !== AWS_OWNED
            ? { 'aws:ResourceAccount': resourceAccount }
            : {}),
          ...context,
        },
      },
    },
    { simulationMode: 'Strict' },
  );
  if (response.resultType === 'error') {
    throw new Error(`the evaluator refused ${action} on ${resource}: ${JSON.stringify(response.errors)}`);
  }
  return response.overallResult as Decision;
}
