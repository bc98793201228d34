import { GetCallerIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { parse as parseArn, validate as validateArn } from '@aws-sdk/util-arn-parser';
import { ProviderError } from '@smithy/core/config';
import { ConfigError } from '../../lib/errors.ts';
import { errorName } from './errors.ts';

const CREDENTIAL_HELP =
  'pass --profile or set AWS_PROFILE (a profile from ~/.aws/config, e.g. after `aws sso login`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary credentials)';
const REGION_HELP = 'set AWS_REGION (or pass --region, or set `region` in your AWS_PROFILE)';

/** What STS answers when it rejects the credentials the SDK's chain found (its own names, not classes). */
const BAD_CREDENTIALS = new Set([
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'UnrecognizedClientException',
  'AccessDenied',
]);

/**
 * The partition (aws, aws-us-gov, aws-cn, ...) of an ARN such as the caller identity's: ARNs built
 * here must carry the caller's, or policies in GovCloud or China name resources that cannot exist.
 */
export function partitionOf(arn: string): string {
  // No ARN at all (an emulator may send none): the commercial partition.
  return validateArn(arn) ? parseArn(arn).partition : 'aws';
}

/**
 * Checks region and credentials before anything else: STS GetCallerIdentity needs no permission, so a
 * failure here is about the caller's setup and is reported as a ConfigError saying what to set.
 */
export async function checkCredentials(sts: STSClient, profile = process.env.AWS_PROFILE) {
  // The SDK's region chain throws when it finds none: the same answer as an empty region.
  const region = await sts.config.region().catch(() => undefined);
  const named = profile ? ` (profile ${profile} has none, or does not exist)` : '';
  if (!region) throw new ConfigError(`no AWS region${named}: ${REGION_HELP}`);
  try {
    const { Account = '', Arn = '' } = await sts.send(new GetCallerIdentityCommand({}));
    return { account: Account, arn: Arn, region, partition: partitionOf(Arn) };
  } catch (err) {
    // The SDK's credential chain found nothing usable (CredentialsProviderError and its kin).
    if (err instanceof ProviderError) {
      const where = profile ? ` for profile ${profile} (missing, or without keys: ${err.message})` : '';
      throw new ConfigError(`no AWS credentials found${where}: ${CREDENTIAL_HELP}`, { cause: err });
    }
    const name = errorName(err);
    if (BAD_CREDENTIALS.has(name)) {
      throw new ConfigError(`AWS rejected the credentials (${name}): ${CREDENTIAL_HELP}`, { cause: err });
    }
    throw err;
  }
}
