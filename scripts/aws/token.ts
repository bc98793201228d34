import {
  DeleteParameterCommand,
  GetParameterCommand,
  InvalidResourceId,
  ListTagsForResourceCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  paginateGetParameterHistory,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { build as buildArn } from '@aws-sdk/util-arn-parser';
import { unlessAbsent } from './errors.ts';
import { CREATED_BY_TAG, defaultTokenParameter, projectTags, tokenTagValue } from './tags.ts';

export function parameterArn(partition: string, region: string, account: string, name: string): string {
  const resource = `parameter/${tokenTagValue(name)}`;
  return buildArn({ partition, service: 'ssm', region, accountId: account, resource });
}

export async function parameterExists(ssm: SSMClient, name: string): Promise<boolean> {
  const found = await unlessAbsent(ssm.send(new GetParameterCommand({ Name: name })), ParameterNotFound);
  return found !== undefined;
}

/**
 * Creates the SecureString (tagged as ours) or overwrites its value. PutParameter refuses Tags together
 * with Overwrite, hence create first and overwrite on ParameterAlreadyExists. The value is never logged.
 */
export async function putToken(
  ssm: SSMClient,
  options: { name: string; parameterName: string; token: string },
): Promise<{ created: boolean }> {
  const input = { Name: options.parameterName, Value: options.token, Type: 'SecureString' as const };
  try {
    await ssm.send(
      new PutParameterCommand({
        ...input,
        Description: `API token the random-number agent (${options.name}) sends to the service`,
        Tags: projectTags(options.name),
      }),
    );
    return { created: true };
  } catch (err) {
    if (!(err instanceof ParameterAlreadyExists)) throw err;
  }
  await ssm.send(new PutParameterCommand({ ...input, Overwrite: true }));
  return { created: false };
}

/** Whether the parameter exists and carries our CreatedBy and Project tags. */
export async function tokenOwner(ssm: SSMClient, name: string, parameterName: string) {
  const command = new ListTagsForResourceCommand({ ResourceType: 'Parameter', ResourceId: parameterName });
  const found = await unlessAbsent(ssm.send(command), InvalidResourceId, ParameterNotFound);
  if (!found) return 'absent';
  const ours = [CREATED_BY_TAG, { Key: 'Project', Value: name }].every((wanted) =>
    found.TagList?.some((t) => t.Key === wanted.Key && t.Value === wanted.Value),
  );
  return ours ? 'ours' : 'foreign';
}

/** Of the candidate parameter names (each once, undefined skipped), those that exist: ours and others'. */
export async function tokenOwners(ssm: SSMClient, name: string, candidates: (string | undefined)[]) {
  const names = [...new Set(candidates)].filter((p) => p !== undefined);
  const owners = await Promise.all(names.map((p) => tokenOwner(ssm, name, p)));
  const whose = (owner: string) => names.filter((_, i) => owners[i] === owner);
  return { ours: whose('ours'), foreign: whose('foreign') };
}

/** Deletes those of the parameters still tagged as ours for this project (checked again, after the waits). */
export async function deleteTokensIfOurs(ssm: SSMClient, name: string, parameterNames: string[]) {
  const { ours } = await tokenOwners(ssm, name, parameterNames);
  for (const Name of ours)
    await unlessAbsent(ssm.send(new DeleteParameterCommand({ Name })), ParameterNotFound);
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
  const pages = paginateGetParameterHistory({ client: ssm }, { Name: parameterName });
  const readAll = async () => {
    for await (const page of pages) keyId = page.Parameters?.at(-1)?.KeyId ?? keyId;
  };
  await unlessAbsent(readAll(), ParameterNotFound);
  return keyId && !/(^|:)alias\/aws\/ssm$/.test(keyId) ? keyId : undefined;
}

/**
 * Which token parameter a run uses when no token flag was given, so that a re-run (an upgrade) keeps
 * the token: the one an earlier run recorded on the agent role (see iam.ts recordedTokenParameter), if
 * it still exists; else the default parameter if provision-ec2 created it for this project.
 */
export async function reusableTokenParameter(ssm: SSMClient, options: { name: string; recorded?: string }) {
  if (options.recorded && (await parameterExists(ssm, options.recorded))) {
    return { parameterName: options.recorded, source: 'recorded' };
  }
  const fallback = defaultTokenParameter(options.name);
  const owner = await tokenOwner(ssm, options.name, fallback);
  if (owner === 'ours') return { parameterName: fallback, source: 'default' };
  const note = `${fallback} exists but was not created by provision-ec2 for ${options.name}: not used; pass --api-token-parameter ${fallback} to use it`;
  return { source: 'none', note: owner === 'foreign' ? note : undefined };
}
