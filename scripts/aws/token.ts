import {
  DeleteParameterCommand,
  GetParameterCommand,
  GetParameterHistoryCommand,
  ListTagsForResourceCommand,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { build as buildArn, parse as parseArn, validate as validateArn } from '@aws-sdk/util-arn-parser';

import { errorName } from './errors.ts';
import { CREATED_BY_TAG, defaultTokenParameter, projectTags } from './tags.ts';

export { CREATED_BY_TAG, defaultTokenParameter };

/**
 * The partition (aws, aws-us-gov, aws-cn, ...) of an ARN such as the caller identity's: ARNs built
 * here must carry the caller's, or policies in GovCloud or China name resources that cannot exist.
 */
export function partitionOf(arn: string): string {
  // No ARN at all (an emulator may send none): the commercial partition.
  return validateArn(arn) ? parseArn(arn).partition : 'aws';
}

export function parameterArn(
  partition: string,
  region: string,
  account: string,
  parameterName: string,
): string {
  const resource = `parameter/${parameterName.replace(/^\//, '')}`;
  return buildArn({ partition, service: 'ssm', region, accountId: account, resource });
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
        Tags: projectTags(options.name),
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
 * The KMS key the SecureString is encrypted with, when it is not the account's default `aws/ssm` key:
 * only then does the agent role need kms:Decrypt (the default key's policy lets SSM use it for anyone
 * in the account). From the parameter's history (its latest version; without decryption), which the
 * operator policy allows on the project's parameters only, where DescribeParameters would need every
 * parameter's metadata in the account.
 */
export async function customerKeyOf(ssm: SSMClient, parameterName: string): Promise<string | undefined> {
  let keyId: string | undefined;
  let NextToken: string | undefined;
  try {
    do {
      const page = await ssm.send(new GetParameterHistoryCommand({ Name: parameterName, NextToken }));
      keyId = page.Parameters?.at(-1)?.KeyId ?? keyId;
      NextToken = page.NextToken;
    } while (NextToken);
  } catch (err) {
    if (errorName(err) === 'ParameterNotFound') return undefined;
    throw err;
  }
  if (!keyId || /(^|:)alias\/aws\/ssm$/.test(keyId)) return undefined;
  return keyId;
}

export type TokenOrigin = 'given' | 'recorded' | 'default' | 'none';

/**
 * Which token parameter a run uses when no token flag was given, so that a re-run (an upgrade) keeps
 * the token: the one an earlier run recorded on the agent role (see iam.ts recordedTokenParameter), if
 * it still exists; else the default parameter if provision-ec2 created it for this project.
 */
export async function reusableTokenParameter(
  ssm: SSMClient,
  options: { name: string; recorded?: string },
): Promise<{ parameterName?: string; source: TokenOrigin; note?: string }> {
  if (options.recorded && (await parameterExists(ssm, options.recorded))) {
    return { parameterName: options.recorded, source: 'recorded' };
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
