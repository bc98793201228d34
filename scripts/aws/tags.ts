/**
 * Marks every resource provision-ec2 creates. The operator policy (docs/iam-policy.json) lets its holder
 * start, terminate, delete and send commands only to resources carrying it, and lets it be set only
 * while creating one (EC2's tag-on-create), so it cannot be put on someone else's instance.
 */
export const CREATED_BY_TAG = { Key: 'CreatedBy', Value: 'random-number-provision-ec2' };

/**
 * The IAM path of the agent roles and instance profiles, and the SSM path of the parameters the project
 * may use: the operator policy and the agent's permissions boundary name nothing outside them.
 */
export const IAM_PATH = '/random-number/';
export const PARAMETER_PREFIX = '/random-number/';

/**
 * The agent role's tag naming the parameter its agent reads the token from, as in the parameter's ARN
 * (`random-number/rn/api-token` for `/random-number/rn/api-token`: IAM allows a policy variable only
 * after the resource type's slash). A re-run without token flags reads the decision back from here; the
 * permissions boundary lets the role read that parameter and no other
 * (`parameter/${aws:PrincipalTag/TokenParameter}`).
 */
export const TOKEN_TAG = 'TokenParameter';

export const tokenTagValue = (parameterName: string): string => parameterName.replace(/^\//, '');

/** The tags every created resource carries; teardown and idempotent re-runs find resources by them. */
export function projectTags(name: string): { Key: string; Value: string }[] {
  return [{ Key: 'Name', Value: name }, { Key: 'Project', Value: name }, CREATED_BY_TAG];
}

/**
 * EC2 tag filters selecting the project's resources: its Project tag and ours (see CREATED_BY_TAG). SSM
 * Run Command targets the project's instances with the same two (ssm-command.ts).
 */
export function projectFilters(name: string) {
  return [
    { Name: 'tag:Project', Values: [name] },
    { Name: `tag:${CREATED_BY_TAG.Key}`, Values: [CREATED_BY_TAG.Value] },
  ];
}

/** The token parameter's name when --api-token is given without --api-token-parameter. */
export const defaultTokenParameter = (name: string): string => `${PARAMETER_PREFIX}${name}/api-token`;

/**
 * Why a token parameter name cannot be used, if it cannot: the project's parameters live under
 * PARAMETER_PREFIX, because the operator policy and the agent's permissions boundary allow no other, so
 * a name elsewhere would install an agent that cannot read its token.
 */
export function tokenParameterProblem(parameterName: string): string | undefined {
  if (!parameterName.startsWith(PARAMETER_PREFIX) || parameterName.length <= PARAMETER_PREFIX.length) {
    return `must be under ${PARAMETER_PREFIX} (the operator policy and the agent role's permissions boundary allow no other parameter), e.g. ${PARAMETER_PREFIX}<name>/api-token`;
  }
  // IAM tag values (the role records the name) allow these and a few more; SSM names allow exactly these.
  if (!/^[a-zA-Z0-9_./-]{1,256}$/.test(parameterName)) {
    return 'may hold only letters, digits and _ . - / (at most 256 characters)';
  }
}
