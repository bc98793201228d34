import { setTimeout as sleep } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import ky, { HTTPError } from 'ky';
import { Agent } from 'undici';
import { NUMBER_RANGE } from '../lib/contract.ts';

/** What one successful poll brought back. */
export interface PollResult {
  number: number;
  attempts: number;
  /** The service's own flag (JSON answers only): true when this was the first number its process served. */
  coldStart: boolean | undefined;
}

/**
 * A poll (or one attempt of it) that produced no number. `reason` is one short line, safe to log (never
 * the token); `retryable` says whether another attempt could help.
 */
export class PollError extends Error {
  override name = 'PollError';
  /** How many attempts the poll made: set when the poll gives up. */
  attempts: number;
  /** Whether another attempt could help (a timeout, a network error, 429, 5xx). */
  readonly retryable: boolean;
  constructor(
    readonly reason: string,
    options: { attempts?: number; retryable?: boolean; cause?: unknown } = {},
  ) {
    super(reason, { cause: options.cause });
    this.attempts = options.attempts ?? 1;
    this.retryable = options.retryable ?? false;
  }
}

export interface PollerOptions {
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Bound on one attempt, from sending the request to the end of the body. */
  attemptTimeoutMs: number;
  /** CA certificates (PEM) trusted for this service besides Node's built-in roots. */
  ca?: string | undefined;
  maxAttempts?: number;
  backoff?: { baseMs: number; maxMs: number };
}

export interface PollRequest {
  /** Epoch ms by which the poll must be over: no attempt runs past it, no backoff starts that cannot fit. */
  deadline: number;
  /** Aborts the poll (shutdown). */
  signal?: AbortSignal;
}

/** The service's numbers are integers 0..100 (lib/contract.ts); nothing else is ever written. */
const { min: MIN, max: MAX } = NUMBER_RANGE;
/** The service answers a few bytes; a proxy's error page or worse is cut off here, not read into memory. */
const MAX_BODY_BYTES = 4096;
/** An attempt shorter than this could not even finish a TLS handshake: do not start it. */
const MIN_ATTEMPT_MS = 100;

/**
 * Returns `poll`: GET the service with ky, retrying network errors, timeouts, 429 and 5xx with
 * exponential backoff and jitter, every attempt bounded by `attemptTimeoutMs` and the whole poll by
 * the caller's deadline. ky 1.x's own `timeout` covers the whole request including its retries and
 * stops at the response headers, so the bound here is our own AbortSignal, which also cuts a body
 * that never ends; ky's retry is off and the loop below owns the attempts.
 */
export function createPoller(options: PollerOptions) {
  const { url, token, attemptTimeoutMs, maxAttempts = 3, backoff = { baseMs: 500, maxMs: 5000 } } = options;
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  const headers = { Accept: 'application/json, text/plain;q=0.9', ...auth };
  // The CA on this client's connections alone (NODE_EXTRA_CA_CERTS would trust it for the AWS calls too).
  const { ca } = options;
  const dispatcher = ca ? new Agent({ connect: { ca: [...rootCertificates, ca] } }) : undefined;
  const client = ky.create({ retry: 0, timeout: false, headers, dispatcher });

  async function attempt(timeoutMs: number, outer: AbortSignal): Promise<Omit<PollResult, 'attempts'>> {
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), outer]);
    try {
      const response = await client.get(url, { signal });
      const body = await readCapped(response, MAX_BODY_BYTES);
      return parseAnswer(response.headers.get('content-type') ?? '', body);
    } catch (err) {
      if (err instanceof PollError) throw err;
      const cause = err;
      if (outer.aborted) throw new PollError('aborted: the agent is stopping', { cause });
      if (signal.aborted) throw new PollError(`timed out after ${timeoutMs} ms`, { retryable: true, cause });
      if (err instanceof HTTPError) {
        const { status } = err.response;
        const reason = `HTTP ${status}${HINTS[status] ?? ''}`;
        throw new PollError(reason, { retryable: status >= 500 || status === 429, cause });
      }
      const net = (err as { cause?: { code?: string; message?: string } }).cause;
      const code = net?.code ?? net?.message ?? (err as Error).message;
      const tls = tlsProblem(code);
      // Retrying cannot fix trust, a wrong name or an expired certificate: say what would, and stop.
      throw new PollError(tls ? `TLS: ${tls} (${code})` : `network error: ${code}`, {
        retryable: !tls,
        cause,
      });
    }
  }

  return async function poll({ deadline, signal = new AbortController().signal }: PollRequest) {
    for (let attempts = 1; ; attempts++) {
      try {
        const timeoutMs = Math.max(1, Math.floor(Math.min(attemptTimeoutMs, deadline - Date.now())));
        return { ...(await attempt(timeoutMs, signal)), attempts };
      } catch (err) {
        const failure = err as PollError;
        failure.attempts = attempts;
        const wait =
          Math.min(backoff.maxMs, backoff.baseMs * 2 ** (attempts - 1)) * (0.5 + Math.random() / 2);
        const room = deadline - Date.now() - wait;
        if (!failure.retryable || attempts >= maxAttempts || room < MIN_ATTEMPT_MS || signal.aborted) {
          throw failure;
        }
        await sleep(wait, undefined, { signal }).catch(() => {
          throw new PollError(`${failure.reason}; aborted: the agent is stopping`, { attempts });
        });
      }
    }
  };
}

/** Only an integer 0..100 is a number: a JSON answer's `number`, or a plain body of digits alone. */
export function parseAnswer(contentType: string, body: string): Omit<PollResult, 'attempts'> {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  const json = type === 'application/json' || type.endsWith('+json');
  if (!json && type !== '' && type !== 'text/plain') {
    throw new PollError(`invalid answer: content type ${type}, expected application/json or text/plain`);
  }
  if (!json && !/^\d{1,3}$/.test(body.trim())) {
    throw new PollError(`invalid answer: not a whole number: ${quote(body)}`);
  }
  let value: { number?: unknown; coldStart?: unknown } | number | null;
  try {
    value = json ? JSON.parse(body) : Number(body);
  } catch {
    throw new PollError(`invalid answer: JSON that does not parse: ${quote(body)}`);
  }
  const number = typeof value === 'object' && value !== null ? value.number : value;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < MIN || number > MAX) {
    throw new PollError(`invalid answer: not an integer ${MIN}..${MAX}: ${quote(body)}`);
  }
  const coldStart = typeof value === 'object' ? value?.coldStart : undefined;
  return { number, coldStart: typeof coldStart === 'boolean' ? coldStart : undefined };
}

async function readCapped(response: Response, limit: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of (response.body ?? []) as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw new PollError(`invalid answer: body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Where to give the agent a CA: the provisioner's flag on EC2, the variable anywhere else. */
const CA_FIX =
  'give the agent the CA that signed it: provision-ec2 (or agent-command) --ca-cert certs/ca.crt, or SERVICE_CA_FILE=<PEM file> outside EC2';
/** For the codes that mean "no trusted CA vouches for this certificate". */
const UNTRUSTED = `the service's certificate is not signed by a CA the agent trusts; ${CA_FIX}`;

/**
 * Why a TLS handshake failed and what fixes it, by OpenSSL/Node error code (Node's tls module:
 * X509_V_ERR_* names without the prefix, and ERR_TLS_*).
 */
const TLS_PROBLEMS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNTRUSTED,
  SELF_SIGNED_CERT_IN_CHAIN: UNTRUSTED,
  DEPTH_ZERO_SELF_SIGNED_CERT: UNTRUSTED,
  CERT_HAS_EXPIRED:
    "the service's certificate has expired; renew it (make tls-cert DOMAIN=<name> renews within 30 days of expiry) and deploy it again",
  CERT_NOT_YET_VALID:
    "the service's certificate is not valid yet; check the clocks of this machine and of the CA",
  ERR_TLS_CERT_ALTNAME_INVALID:
    "the service's certificate is for another name than SERVICE_URL's host; issue it for that name (make tls-cert DOMAIN=<host>) or fix SERVICE_URL",
};

/** One line on why a TLS handshake failed and what fixes it; undefined when it is not about the certificate. */
export function tlsProblem(code: string): string | undefined {
  if (Object.hasOwn(TLS_PROBLEMS, code)) return TLS_PROBLEMS[code];
  if (!/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) return undefined;
  return `certificate verification failed; if the service uses a private CA, ${CA_FIX}`;
}

/** What to check after an HTTP status that retrying cannot fix. */
const AUTH_HINT = ' (check API_TOKEN / API_TOKEN_PARAMETER)';
const HINTS: Record<number, string> = { 401: AUTH_HINT, 403: AUTH_HINT, 404: ' (check SERVICE_URL)' };

/** A short, single-line excerpt of what came back, for the log. */
function quote(body: string): string {
  return JSON.stringify(body.length > 60 ? `${body.slice(0, 60)}…` : body);
}
