/**
 * The agent role's inline policy. AmazonSSMManagedInstanceCore (attached for Run Command) grants
 * ssm:GetParameter and ssm:GetParameters on every parameter; this policy narrows that to exactly the
 * token parameter (an explicit Deny on every other), or to none without a token. The permissions
 * boundary draws the same line from the role's TokenParameter tag, so it holds even if this policy is
 * rewritten. kms:Decrypt is added only for a customer managed key, and only through SSM: the default
 * `aws/ssm` key needs no IAM permission.
 */
export const AGENT_POLICY_NAME = 'agent-parameters';

const READ_PARAMETER_ACTIONS = [
  'ssm:GetParameter',
  'ssm:GetParameters',
  'ssm:GetParametersByPath',
  'ssm:GetParameterHistory',
];

export interface AgentPolicyInput {
  partition: string;
  region: string;
  account: string;
  /** The token parameter's ARN; without it the role may read no parameter. */
  tokenArn?: string;
  /** A customer managed KMS key of the token parameter: key id, key ARN, alias name or alias ARN. */
  keyId?: string;
}

/** The service endpoint name SSM calls KMS with (kms:ViaService), per partition's DNS suffix. */
export function ssmViaService(partition: string, region: string): string {
  return `ssm.${region}.amazonaws.com${partition === 'aws-cn' ? '.cn' : ''}`;
}

function decryptStatement({ partition, region, account, keyId }: AgentPolicyInput & { keyId: string }) {
  const keys = `arn:${partition}:kms:${region}:${account}:key`;
  // Decrypt names the key, never the alias: an alias matches the key by the alias it carries.
  const alias = /(?:^|:)(alias\/.+)$/.exec(keyId)?.[1];
  return {
    Sid: 'DecryptTokenThroughSsm',
    Effect: 'Allow',
    Action: 'kms:Decrypt',
    Resource: alias ? `${keys}/*` : keyId.startsWith('arn:') ? keyId : `${keys}/${keyId}`,
    Condition: {
      StringEquals: { 'kms:ViaService': ssmViaService(partition, region) },
      ...(alias ? { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': alias } } : {}),
    },
  };
}

export function agentPolicyDocument(input: AgentPolicyInput) {
  const { tokenArn, keyId } = input;
  const Statement = tokenArn
    ? [
        { Sid: 'ReadApiToken', Effect: 'Allow', Action: 'ssm:GetParameter', Resource: tokenArn },
        { Sid: 'NoOtherParameters', Effect: 'Deny', Action: READ_PARAMETER_ACTIONS, NotResource: tokenArn },
        ...(keyId ? [decryptStatement({ ...input, keyId })] : []),
      ]
    : [{ Sid: 'NoParameters', Effect: 'Deny', Action: READ_PARAMETER_ACTIONS, Resource: '*' }];
  return { Version: '2012-10-17', Statement };
}
