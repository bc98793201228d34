import { GetParameterCommand, SSMClient, type SSMClientConfig } from '@aws-sdk/client-ssm';
import { tokenProblem } from '../lib/contract.ts';
import { ConfigError, TransientError } from '../lib/errors.ts';
import type { AgentConfig } from './config.ts';

/** What an SDK call rejects with: the service's own errors carry $metadata, a network or abort error none. */
type SdkError = Error & { $metadata?: { httpStatusCode?: number } };

/** Reads a parameter, decrypted: SSM's GetParameter, or a stand-in in unit tests. */
export type ParameterReader = (name: string, signal: AbortSignal) => Promise<string | undefined>;

/**
 * GetParameter with decryption through the SDK, which resolves the rest as it does everywhere: the
 * credentials (environment, then the instance role through IMDSv2), the endpoint (the region's
 * partition, FIPS or dual-stack when asked for, AWS_ENDPOINT_URL_SSM), retries and clock skew.
 * The region is required here, not left to the SDK, so that its absence is a ConfigError (exit 78:
 * systemd stops retrying what only a change of the unit can fix). AWS_DEFAULT_REGION is accepted as
 * the AWS CLI accepts it.
 */
export function ssmReader(
  env: Record<string, string | undefined> = process.env,
  config: SSMClientConfig = {},
): ParameterReader {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  const needed = 'API_TOKEN_PARAMETER needs AWS_REGION (the region of the SSM parameter, e.g. us-east-1)';
  if (!region) throw new ConfigError(needed);
  return async (name, abortSignal) => {
    const client = new SSMClient({ region, ...config });
    try {
      const command = new GetParameterCommand({ Name: name, WithDecryption: true });
      return (await client.send(command, { abortSignal })).Parameter?.Value;
    } finally {
      client.destroy();
    }
  };
}

/**
 * The Bearer token, if any: API_TOKEN as given, or the SecureString named by API_TOKEN_PARAMETER,
 * read once at start through the instance role (decrypted by SSM). Reading it once means a rotated
 * token needs `systemctl restart random-number-agent`; reading it per tick would add an AWS call and
 * a failure mode to every poll. `timeoutMs` bounds the read, SDK retries included.
 */
export async function resolveToken(
  { apiToken, apiTokenParameter: name }: Pick<AgentConfig, 'apiToken' | 'apiTokenParameter'>,
  reader: () => ParameterReader = ssmReader,
  timeoutMs = 15_000,
): Promise<string | undefined> {
  if (apiToken !== undefined || name === undefined) return apiToken;
  const read = reader();
  // Bounded: with no route to SSM at boot a request would wait on the socket indefinitely; failing
  // lets systemd restart us (every 5 s) until the network is there. That restart is also the retry.
  const value = await read(name, AbortSignal.timeout(timeoutMs)).catch((err: unknown) => {
    const { name: code, message: why, $metadata } = err as SdkError;
    // One line: to an answer it cannot parse (a proxy's page) the SDK adds a hint on a second line.
    const status = $metadata?.httpStatusCode ? ` (HTTP ${$metadata.httpStatusCode})` : '';
    const what = `${code}: ${why.split('\n')[0]}${status}`;
    // Never a ConfigError, even for ParameterNotFound or AccessDenied: at boot the role's policy or the
    // parameter may still be on its way (IAM is eventually consistent), and either can be fixed in AWS
    // without touching the instance, so systemd retrying every few seconds is what recovers.
    const message = `cannot read the API token from SSM parameter ${name} (API_TOKEN_PARAMETER): ${what}`;
    throw new TokenError(message, { cause: err });
  });
  const token = value?.trim() ?? '';
  const problem = tokenProblem(`the value of SSM parameter ${name} (API_TOKEN_PARAMETER)`, token);
  if (problem) throw new TokenError(problem);
  return token;
}

/**
 * The token could not be read or is unusable: fixable in SSM or IAM, or passing by itself (network,
 * throttling), so the agent exits 1 and systemd restarts it.
 */
export class TokenError extends TransientError {
  override name = 'TokenError';
}
