import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';

/**
 * One client per service for one region. Credentials and endpoints come from the SDK's usual chain
 * (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO, AWS_ENDPOINT_URL for an emulator, ...). The SDK retries throttling
 * and 5xx itself; `maxAttempts` gives a busy account a little more room than the default three.
 */
export function createClients({ region, profile }: AwsTarget) {
  // `profile` is the SDK's own: it picks the profile's credentials and region, as AWS_PROFILE does.
  const config = { ...(region ? { region } : {}), ...(profile ? { profile } : {}), maxAttempts: 5 };
  return {
    ec2: new EC2Client(config),
    iam: new IAMClient(config),
    ssm: new SSMClient(config),
    sts: new STSClient(config),
  };
}

/** --region and --profile as given; unset ones come from the SDK's chain (AWS_REGION, AWS_PROFILE, ...). */
export type AwsTarget = { region?: string | undefined; profile?: string | undefined };
