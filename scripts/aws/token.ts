import {
  DeleteParameterCommand,
  GetParameterCommand,
  ListTagsForResourceCommand,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { errorName } from './errors.ts';
import { projectTags } from './tags.ts';

export { defaultTokenParameter } from './tags.ts';

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

/** Deletes the parameter only if it carries our CreatedBy tag for this project. */
export async function deleteTokenIfOurs(
  ssm: SSMClient,
  options: { name: string; parameterName: string },
): Promise<'deleted' | 'absent' | 'kept'> {
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
  if (!ours) return 'kept';
  try {
    await ssm.send(new DeleteParameterCommand({ Name: options.parameterName }));
  } catch (err) {
    if (errorName(err) === 'ParameterNotFound') return 'absent';
    throw err;
  }
  return 'deleted';
}
