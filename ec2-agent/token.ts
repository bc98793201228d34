import { TOKEN_PATTERN, TOKEN_RULE } from '../lib/contract.ts';
import { ConfigError, TransientError } from '../lib/errors.ts';
import { getParameter } from './ssm-parameter.ts';

export interface TokenSource {
  apiToken: string | undefined;
  apiTokenParameter: string | undefined;
}

/** Reads a parameter, decrypted: SSM's GetParameter (ssm-parameter.ts), or a stand-in in unit tests. */
export type ParameterReader = (name: string, signal: AbortSignal) => Promise<string | undefined>;

/** GetParameter in the region the SDK would pick (AWS_REGION, then AWS_DEFAULT_REGION). */
export function ssmReader(env: Record<string, string | undefined> = process.env): ParameterReader {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (!region) {
    throw new ConfigError(
      'API_TOKEN_PARAMETER needs AWS_REGION (the region of the SSM parameter, e.g. us-east-1)',
    );
  }
  return (name, signal) => getParameter(name, { region, signal });
}

/** How long reading the parameter may take, SDK retries included. */
export const TOKEN_TIMEOUT_MS = 15_000;

/**
 * The Bearer token, if any: API_TOKEN as given, or the SecureString named by API_TOKEN_PARAMETER,
 * read once at start through the instance role (decrypted by SSM). Reading it once means a rotated
 * token needs `systemctl restart random-number-agent`; reading it per tick would add an AWS call and
 * a failure mode to every poll.
 */
export async function resolveToken(
  source: TokenSource,
  reader: () => ParameterReader = ssmReader,
  timeoutMs = TOKEN_TIMEOUT_MS,
): Promise<string | undefined> {
  if (source.apiToken !== undefined || source.apiTokenParameter === undefined) return source.apiToken;
  const name = source.apiTokenParameter;
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
    throw new TokenError(
      `cannot read the API token from SSM parameter ${name} (API_TOKEN_PARAMETER): ${what}`,
      {
        cause: err,
      },
    );
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
