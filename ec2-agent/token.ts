import { TOKEN_PATTERN, TOKEN_RULE } from '../lib/contract.ts';
import { ConfigError, TransientError } from '../lib/errors.ts';
import type { AgentConfig } from './config.ts';
import { getParameter } from './ssm-parameter.ts';

/** Reads a parameter, decrypted: SSM's GetParameter (ssm-parameter.ts), or a stand-in in unit tests. */
export type ParameterReader = (name: string, signal: AbortSignal) => Promise<string | undefined>;

/** GetParameter in the region the SDK would pick (AWS_REGION, then AWS_DEFAULT_REGION). */
export function ssmReader(env: Record<string, string | undefined> = process.env): ParameterReader {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  const needed = 'API_TOKEN_PARAMETER needs AWS_REGION (the region of the SSM parameter, e.g. us-east-1)';
  if (!region) throw new ConfigError(needed);
  return (name, signal) => getParameter(name, { region, signal });
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
  let value: string | undefined;
  try {
    // Bounded: with no route to SSM at boot a request would wait on the socket indefinitely; failing
    // lets systemd restart us (every 5 s) until the network is there. That restart is also the retry.
    value = await read(name, AbortSignal.timeout(timeoutMs));
  } catch (err) {
    const what = `${(err as Error).name}: ${(err as Error).message}`;
    // Never a ConfigError, even for ParameterNotFound or AccessDenied: at boot the role's policy or the
    // parameter may still be on its way (IAM is eventually consistent), and either can be fixed in AWS
    // without touching the instance, so systemd retrying every few seconds is what recovers.
    const message = `cannot read the API token from SSM parameter ${name} (API_TOKEN_PARAMETER): ${what}`;
    throw new TokenError(message, { cause: err });
  }
  const token = value?.trim();
  if (!token || !TOKEN_PATTERN.test(token)) {
    throw new TokenError(`SSM parameter ${name} (API_TOKEN_PARAMETER) must hold a token of ${TOKEN_RULE}`);
  }
  return token;
}

/**
 * The token could not be read or is unusable: fixable in SSM or IAM, or passing by itself (network,
 * throttling), so the agent exits 1 and systemd restarts it.
 */
export class TokenError extends TransientError {
  override name = 'TokenError';
}
