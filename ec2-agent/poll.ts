import ky, { HTTPError } from 'ky';
import { NUMBER_RANGE } from '../lib/contract.ts';

/** What one successful poll brought back. */
export interface PollResult {
  number: number;
  attempts: number;
  /** The service's own flag (JSON answers only): true when this was the first number its process served. */
  coldStart: boolean | undefined;
}

/** A poll that produced no number. `reason` is one short line, safe to log (never the token). */
export class PollError extends Error {
  override name = 'PollError';
  constructor(
    readonly reason: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
  }
}

/** One attempt's failure, and whether another attempt could help. */
class AttemptError extends Error {
  override name = 'AttemptError';
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PollerOptions {
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Bound on one attempt, from sending the request to the end of the body. */
  attemptTimeoutMs: number;
  maxAttempts?: number;
  backoff?: { baseMs: number; maxMs: number };
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
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

const sleepFor = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal.reason);
    }
    signal.addEventListener('abort', aborted, { once: true });
  });

/**
 * Returns `poll`: GET the service with ky, retrying network errors, timeouts, 429 and 5xx with
 * exponential backoff and jitter, every attempt bounded by `attemptTimeoutMs` and the whole poll by
 * the caller's deadline. ky 1.x's own `timeout` covers the whole request including its retries and
 * stops at the response headers, so the bound here is our own AbortSignal, which also cuts a body
 * that never ends; ky's retry is off and the loop below owns the attempts.
 */
export function createPoller(options: PollerOptions) {
  const {
    url,
    token,
    attemptTimeoutMs,
    maxAttempts = 3,
    backoff = { baseMs: 500, maxMs: 5000 },
    fetch = globalThis.fetch,
    now = Date.now,
    sleep = sleepFor,
  } = options;
  const headers: Record<string, string> = { Accept: 'application/json, text/plain;q=0.9' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const client = ky.create({ retry: 0, timeout: false, headers, fetch });

  async function attempt(timeoutMs: number, outer: AbortSignal): Promise<Omit<PollResult, 'attempts'>> {
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), outer]);
    try {
      const response = await client.get(url, { signal });
      const body = await readCapped(response, MAX_BODY_BYTES);
      return parseAnswer(response.headers.get('content-type') ?? '', body);
    } catch (err) {
      if (err instanceof AttemptError) throw err;
      if (outer.aborted) throw new AttemptError('aborted: the agent is stopping', false, { cause: err });
      if (signal.aborted) throw new AttemptError(`timed out after ${timeoutMs} ms`, true, { cause: err });
      if (err instanceof HTTPError) {
        const status = err.response.status;
        throw new AttemptError(`HTTP ${status}${hint(status)}`, status >= 500 || status === 429, {
          cause: err,
        });
      }
      throw networkError(err);
    }
  }

  return async function poll({ deadline, signal = new AbortController().signal }: PollRequest) {
    let attempts = 0;
    for (;;) {
      const left = deadline - now();
      attempts += 1;
      try {
        const result = await attempt(Math.max(1, Math.floor(Math.min(attemptTimeoutMs, left))), signal);
        return { ...result, attempts };
      } catch (err) {
        const failure = err as AttemptError;
        const wait =
          Math.min(backoff.maxMs, backoff.baseMs * 2 ** (attempts - 1)) * (0.5 + Math.random() / 2);
        const room = deadline - now() - wait;
        if (!failure.retryable || attempts >= maxAttempts || room < MIN_ATTEMPT_MS || signal.aborted) {
          throw new PollError(failure.message, attempts, { cause: failure.cause });
        }
        try {
          await sleep(wait, signal);
        } catch {
          throw new PollError(`${failure.message}; aborted: the agent is stopping`, attempts);
        }
      }
    }
  };
}

/** Only an integer 0..100 is a number: a JSON answer's `number`, or a plain body of digits alone. */
export function parseAnswer(contentType: string, body: string): Omit<PollResult, 'attempts'> {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/json' || type.endsWith('+json')) {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      throw new AttemptError(`invalid answer: JSON that does not parse: ${quote(body)}`, false);
    }
    const number =
      typeof value === 'object' && value !== null ? (value as { number?: unknown }).number : value;
    const coldStart = (value as { coldStart?: unknown } | null)?.coldStart;
    return {
      number: checkRange(number, body),
      coldStart: typeof coldStart === 'boolean' ? coldStart : undefined,
    };
  }
  if (type !== '' && type !== 'text/plain') {
    throw new AttemptError(
      `invalid answer: content type ${type}, expected application/json or text/plain`,
      false,
    );
  }
  const text = body.trim();
  if (!/^\d{1,3}$/.test(text))
    throw new AttemptError(`invalid answer: not a whole number: ${quote(body)}`, false);
  return { number: checkRange(Number(text), body), coldStart: undefined };
}

function checkRange(value: unknown, body: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN || value > MAX) {
    throw new AttemptError(`invalid answer: not an integer ${MIN}..${MAX}: ${quote(body)}`, false);
  }
  return value;
}

async function readCapped(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw new AttemptError(`invalid answer: body larger than ${limit} bytes`, false);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function networkError(err: unknown): AttemptError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? cause?.message ?? (err as Error).message;
  const tls = tlsProblem(code);
  // Retrying cannot fix trust, a wrong name or an expired certificate: say what would, and stop.
  if (tls) return new AttemptError(`TLS: ${tls} (${code})`, false, { cause: err });
  return new AttemptError(`network error: ${code}`, true, { cause: err });
}

/** The codes for "no trusted CA vouches for this certificate". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

/** Where to give the agent a CA: the provisioner's flag on EC2, the variable anywhere else. */
const CA_FIX =
  'give the agent the CA that signed it: provision-ec2 (or agent-command) --ca-cert certs/ca.crt, or NODE_EXTRA_CA_CERTS=<PEM file> outside EC2';

/**
 * One line on why a TLS handshake failed and what fixes it, from the OpenSSL/Node error code; undefined
 * when the failure is not about the certificate. Codes: Node's tls module (X509_V_ERR_* names without
 * the prefix, and ERR_TLS_*).
 */
export function tlsProblem(code: string): string | undefined {
  if (UNTRUSTED.has(code)) {
    return `the service's certificate is not signed by a CA the agent trusts; ${CA_FIX}`;
  }
  if (code === 'CERT_HAS_EXPIRED') {
    return "the service's certificate has expired; renew it (make tls-cert DOMAIN=<name> renews within 30 days of expiry) and deploy it again";
  }
  if (code === 'CERT_NOT_YET_VALID') {
    return "the service's certificate is not valid yet; check the clocks of this machine and of the CA";
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return "the service's certificate is for another name than SERVICE_URL's host; issue it for that name (make tls-cert DOMAIN=<host>) or fix SERVICE_URL";
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return `certificate verification failed; if the service uses a private CA, ${CA_FIX}`;
  }
  return undefined;
}

function hint(status: number): string {
  if (status === 401 || status === 403) return ' (check API_TOKEN / API_TOKEN_PARAMETER)';
  if (status === 404) return ' (check SERVICE_URL)';
  return '';
}

/** A short, single-line excerpt of what came back, for the log. */
function quote(body: string): string {
  const short = body.length > 60 ? `${body.slice(0, 60)}…` : body;
  return JSON.stringify(short);
}
