import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ConfigError } from '../lib/errors.ts';

export interface TokenSource {
  apiToken: string | undefined;
  apiTokenParameter: string | undefined;
}

/** Something that can send GetParameter: an SSMClient, or a stand-in in unit tests. */
export interface ParameterReader {
  send(
    command: GetParameterCommand,
    options?: { abortSignal?: AbortSignal },
  ): Promise<{ Parameter?: { Value?: string } }>;
}

/** How long reading the parameter may take, SDK retries included. */
export const TOKEN_TIMEOUT_MS = 15_000;

/** Errors that a person fixes by changing configuration or permissions, not by waiting. */
const CONFIG_ERRORS = new Set([
  'ParameterNotFound',
  'ParameterVersionNotFound',
  'AccessDeniedException',
  'ValidationException',
]);

/**
 * The Bearer token, if any: API_TOKEN as given, or the SecureString named by API_TOKEN_PARAMETER,
 * read once at start through the instance role (decrypted by SSM). Reading it once means a rotated
 * token needs `systemctl restart random-number-agent`; reading it per tick would add an AWS call and
 * a failure mode to every poll.
 */
export async function resolveToken(
  source: TokenSource,
  client: () => ParameterReader = () => new SSMClient({}),
  timeoutMs = TOKEN_TIMEOUT_MS,
): Promise<string | undefined> {
  if (source.apiToken !== undefined || source.apiTokenParameter === undefined) return source.apiToken;
  const name = source.apiTokenParameter;
  let value: string | undefined;
  try {
    // Bounded: with no route to SSM at boot the SDK would wait on the socket indefinitely; failing lets
    // systemd restart us (every 5 s) until the network is there.
    const answer = await client().send(new GetParameterCommand({ Name: name, WithDecryption: true }), {
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
    value = answer.Parameter?.Value;
  } catch (err) {
    const what = `${(err as Error).name}: ${(err as Error).message}`;
    const message = `cannot read the API token from SSM parameter ${name} (API_TOKEN_PARAMETER): ${what}`;
    if (CONFIG_ERRORS.has((err as Error).name)) throw new ConfigError(message, { cause: err });
    throw new TokenError(message, { cause: err });
  }
  const token = value?.trim();
  if (!token || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(
      `SSM parameter ${name} (API_TOKEN_PARAMETER) must hold a token of printable ASCII with no spaces`,
    );
  }
  return token;
}

/** The token could not be read for a reason that may pass (network, throttling): systemd restarts us. */
export class TokenError extends Error {
  override name = 'TokenError';
}
