import {
  DeleteParameterCommand,
  GetParameterCommand,
  ListTagsForResourceCommand,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { errorName } from './errors.ts';
import { defaultTokenParameter, projectTags } from './tags.ts';

export { defaultTokenParameter };

/** Marks a token parameter as created by the provisioner: only those are deleted by teardown. */
export const CREATED_BY_TAG = { Key: 'CreatedBy', Value: 'random-number-provision-ec2' };

/**
 * The partition (aws, aws-us-gov, aws-cn, ...) of an ARN such as the caller identity's: ARNs built
 * here must carry the caller's, or policies in GovCloud or China name resources that cannot exist.
 */
export function partitionOf(arn: string): string {
  return /^arn:([a-z][a-z0-9-]*):/.exec(arn)?.[1] ?? 'aws';
}

export function parameterArn(
  partition: string,
  region: string,
  account: string,
  parameterName: string,
): string {
  return `arn:${partition}:ssm:${region}:${account}:parameter/${parameterName.replace(/^\//, '')}`;
}

export async function parameterExists(ssm: SSMClient, parameterName: string): Promise<boolean> {
  try {
    await ssm.send(new GetParameterCommand({ Name: parameterName }));
    return true;
  } catch (err) {
    if (errorName(err) === 'ParameterNotFound') return false;
    throw err;
  }
}

/**
 * Creates the SecureString (tagged as ours) or overwrites its value. PutParameter refuses Tags together
 * with Overwrite, hence create first and overwrite on ParameterAlreadyExists. The value is never logged.
 */
export async function putToken(
  ssm: SSMClient,
  options: { name: string; parameterName: string; token: string },
): Promise<{ created: boolean }> {
  try {
    await ssm.send(
      new PutParameterCommand({
        Name: options.parameterName,
        Value: options.token,
        Type: 'SecureString',
        Description: `API token the random-number agent (${options.name}) sends to the service`,
        Tags: [...projectTags(options.name), CREATED_BY_TAG],
      }),
    );
    return { created: true };
  } catch (err) {
    if (errorName(err) !== 'ParameterAlreadyExists') throw err;
  }
  await ssm.send(
    new PutParameterCommand({
      Name: options.parameterName,
      Value: options.token,
      Type: 'SecureString',
      Overwrite: true,
    }),
  );
  return { created: false };
}

/** Whether the parameter exists and carries our CreatedBy and Project tags. */
export async function tokenOwner(
  ssm: SSMClient,
  options: { name: string; parameterName: string },
): Promise<'absent' | 'ours' | 'foreign'> {
  let tags: { Key?: string; Value?: string }[];
  try {
    const out = await ssm.send(
      new ListTagsForResourceCommand({ ResourceType: 'Parameter', ResourceId: options.parameterName }),
    );
    tags = out.TagList ?? [];
  } catch (err) {
    if (['InvalidResourceId', 'ParameterNotFound'].includes(errorName(err))) return 'absent';
    throw err;
  }
  const ours =
    tags.some((t) => t.Key === CREATED_BY_TAG.Key && t.Value === CREATED_BY_TAG.Value) &&
    tags.some((t) => t.Key === 'Project' && t.Value === options.name);
  return ours ? 'ours' : 'foreign';
}

/** Deletes the parameter only if it carries our CreatedBy tag for this project. */
export async function deleteTokenIfOurs(
  ssm: SSMClient,
  options: { name: string; parameterName: string },
): Promise<'deleted' | 'absent' | 'kept'> {
  const owner = await tokenOwner(ssm, options);
  if (owner === 'absent') return 'absent';
  if (owner === 'foreign') return 'kept';
  try {
    await ssm.send(new DeleteParameterCommand({ Name: options.parameterName }));
  } catch (err) {
    if (errorName(err) === 'ParameterNotFound') return 'absent';
    throw err;
  }
  return 'deleted';
}

/**
 * The parameter names an ARN can stand for: a hierarchical name (`/a/b`) loses its leading slash in
 * the ARN, a single-level one may or may not have had one.
 */
export function parameterNamesFromArn(arn: string): string[] {
  const rest = /^arn:[^:]+:ssm:[^:]*:[^:]*:parameter\/(.+)$/.exec(arn)?.[1];
  if (!rest || rest.includes('*')) return [];
  return rest.includes('/') ? [`/${rest}`] : [rest, `/${rest}`];
}

export type TokenSource = 'given' | 'policy' | 'default' | 'none';

/**
 * Which token parameter a run uses when no token flag was given, so that a re-run (an upgrade) keeps
 * the token: the parameter the role's read policy from an earlier run names, if it still exists; else
 * the default `/<name>/api-token` if provision-ec2 created it for this project.
 */
export async function reusableTokenParameter(
  ssm: SSMClient,
  options: { name: string; policyResources: string[] },
): Promise<{ parameterName?: string; source: TokenSource; note?: string }> {
  for (const arn of options.policyResources) {
    for (const candidate of parameterNamesFromArn(arn)) {
      if (await parameterExists(ssm, candidate)) return { parameterName: candidate, source: 'policy' };
    }
  }
  const fallback = defaultTokenParameter(options.name);
  const owner = await tokenOwner(ssm, { name: options.name, parameterName: fallback });
  if (owner === 'ours') return { parameterName: fallback, source: 'default' };
  if (owner === 'foreign') {
    return {
      source: 'none',
      note: `${fallback} exists but was not created by provision-ec2 for ${options.name}: not used; pass --api-token-parameter ${fallback} to use it`,
    };
  }
  return { source: 'none' };
}
