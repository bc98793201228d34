import { rootCertificates } from 'node:tls';
import ky, { HTTPError, type ShouldRetryState, TimeoutError } from 'ky';
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
  attempts = 1;
  /** Whether another attempt could help (a timeout, a network error, 429, any 5xx). */
  readonly retryable: boolean;
  constructor(
    readonly reason: string,
    options: { retryable?: boolean; cause?: unknown } = {},
  ) {
    super(reason, { cause: options.cause });
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
/** A request timeout, rate limiting and every 5xx: a server or a proxy busy, still starting or failing
 * for now, a CDN's 520-524 as much as a 503. */
const RETRY_STATUSES = [408, 429, ...Array.from({ length: 100 }, (_, i) => 500 + i)];

/**
 * Returns `poll`: GET the service with ky's own retry. ky 1.14's `timeout` bounds each attempt on its
 * own (a fresh signal per retry), but only up to the response headers: the body is read inside ky's
 * `fetch`, under the same bound, so a body that never ends is an attempt that timed out. `shouldRetry`
 * vetoes what ky cannot tell alone: a TLS failure (to ky, a network error like any other), an answer
 * we refused, a backoff that the caller's deadline cannot fit, a shutdown. The deadline and the
 * shutdown are the request's signal: either ends an attempt or a backoff at once.
 */
export function createPoller(options: PollerOptions) {
  const { url, token, attemptTimeoutMs, maxAttempts = 3, backoff = { baseMs: 500, maxMs: 5000 } } = options;
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  // ky's full jitter waits at most this long, so shouldRetry can check the deadline before the wait.
  const delay = (retry: number) => Math.min(backoff.maxMs, backoff.baseMs * 2 ** (retry - 1));
  const client = ky.create({
    headers: { Accept: 'application/json, text/plain;q=0.9', ...auth },
    // The CA on this client's connections alone (NODE_EXTRA_CA_CERTS would trust it for the AWS calls too).
    dispatcher: options.ca ? new Agent({ connect: { ca: [...rootCertificates, options.ca] } }) : undefined,
    // A redirect is reported, not followed: followed, the token would be dropped for another origin (and the
    // 401 blamed on it), or the number come over http:// after SERVICE_URL's https://.
    redirect: 'manual',
    timeout: attemptTimeoutMs,
    retry: { limit: maxAttempts - 1, statusCodes: RETRY_STATUSES, retryOnTimeout: true, delay, jitter: true },
    // The body is read here, inside ky's timed section, which otherwise ends at the headers.
    fetch: async (request, init) => readCapped(await fetch(request, init), MAX_BODY_BYTES),
  });

  return async function poll({ deadline, signal: shutdown = new AbortController().signal }: PollRequest) {
    // A timer holds at most 2^31-1 ms (24.8 days); a longer one fires at once. A monthly schedule's
    // budget is longer, but a poll ends long before: its attempts and backoffs are bounded.
    const budgetMs = Math.min(2 ** 31 - 1, Math.max(1, Math.floor(deadline - Date.now())));
    const expired = AbortSignal.timeout(budgetMs);
    let attempts = 0;
    // Why the attempt before a backoff failed: a shutdown during the wait still says it.
    let before = '';
    /** Why an attempt failed, and whether another could help (the statuses ky retries). */
    function classify(err: unknown): PollError {
      if (shutdown.aborted) return new PollError(`${before}aborted: the agent is stopping`, { cause: err });
      if (err instanceof PollError) return err;
      // ky's TimeoutError ends one attempt; the deadline's signal, the poll (whatever error it caused).
      const ms = err instanceof TimeoutError ? attemptTimeoutMs : expired.aborted && budgetMs;
      if (ms) return new PollError(`timed out after ${ms} ms`, { retryable: true, cause: err });
      if (err instanceof HTTPError) {
        const { status, headers: answer } = err.response;
        const retryable = RETRY_STATUSES.includes(status);
        const to = answer.get('location');
        const moved = to && ` (a redirect to ${quote(to)}: set SERVICE_URL to where the service answers)`;
        return new PollError(`HTTP ${status}${moved || HINTS[status] || ''}`, { retryable, cause: err });
      }
      const net = (err as { cause?: { code?: string; message?: string } }).cause;
      // Node names a few OpenSSL verification errors (the rest, a CA's name constraint or a weak digest, are
      // UNSPECIFIED) and undici's codes say little (UND_ERR_SOCKET): only their message says which. A 407
      // fails with an empty message.
      const vague = /^(UNSPECIFIED|UND_ERR_)/.test(net?.code ?? '') && `${net?.code}: ${net?.message}`;
      const code = vague || net?.code || net?.message || (err as Error).message;
      const tls = tlsProblem(code);
      // Retrying cannot fix trust, a wrong name, an expired certificate or a port without TLS.
      const reason = tls ? `TLS: ${tls} (${code})` : `network error: ${code}`;
      return new PollError(reason, { retryable: !tls, cause: err });
    }
    // `undefined` leaves the decision to ky: its status codes, timeouts and network errors.
    const shouldRetry = ({ error, retryCount }: ShouldRetryState) => {
      const room = deadline - Date.now() - delay(retryCount);
      const failure = classify(error);
      before = shutdown.aborted ? before : `${failure.reason}; `;
      return failure.retryable && room >= MIN_ATTEMPT_MS ? undefined : false;
    };
    try {
      const response = await client.get(url, {
        signal: AbortSignal.any([shutdown, expired]),
        hooks: { beforeRequest: [() => void attempts++] },
        // Retry-After is not followed: shouldRetry could not check its wait against the deadline.
        retry: { afterStatusCodes: [], shouldRetry },
      });
      return { ...parseAnswer(response.headers.get('content-type') ?? '', await response.text()), attempts };
    } catch (err) {
      throw Object.assign(classify(err), { attempts });
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

/**
 * The response with its body read in full, at most `limit` bytes of it. An error's body is dropped
 * unread (its connection freed before a retry): ky's HTTPError says what went wrong from the status,
 * and a 5xx page larger than the cap must still be retried.
 */
async function readCapped(response: Response, limit: number): Promise<Response> {
  if (!response.ok) {
    await response.body?.cancel();
    return new Response(null, response);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of (response.body ?? []) as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw new PollError(`invalid answer: body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  // A 204 may not carry even an empty body.
  return new Response(size ? Buffer.concat(chunks) : null, response);
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
  // https:// to a port that answers in plain HTTP (the service itself, or an http listener of the ingress).
  ERR_SSL_WRONG_VERSION_NUMBER:
    "what answers at SERVICE_URL's port does not speak TLS: give the port of its HTTPS listener, or an http:// URL",
};

/** One line on why a TLS handshake failed and what fixes it; undefined when it is not about TLS. */
export function tlsProblem(code: string): string | undefined {
  if (Object.hasOwn(TLS_PROBLEMS, code)) return TLS_PROBLEMS[code];
  if (!/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|^UNSPECIFIED/.test(code)) return undefined;
  return `certificate verification failed; if the service uses a private CA, ${CA_FIX}`;
}

/** What to check after an HTTP status that retrying cannot fix. */
const AUTH_HINT = ' (check API_TOKEN / API_TOKEN_PARAMETER)';
const HINTS: Record<number, string> = { 401: AUTH_HINT, 403: AUTH_HINT, 404: ' (check SERVICE_URL)' };

/** A short, single-line excerpt of what came back, for the log. */
function quote(body: string): string {
  return JSON.stringify(body.length > 60 ? `${body.slice(0, 60)}…` : body);
}
