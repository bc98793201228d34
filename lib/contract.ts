/**
 * What the service, the agent, the CLIs, the results reader and the benchmark agree on, written once.
 * scripts/deploy-knative.sh, which cannot import it, repeats the token rule; install.sh asks the agent
 * bundle instead (`--check`). test/contract.test.ts fails when either drifts.
 */

/** The service hands out integers in this range, both ends included; the agent accepts nothing else. */
export const NUMBER_RANGE = { min: 0, max: 100 } as const;

/**
 * An API token is sent as `Authorization: Bearer <token>`: RFC 6750's b64token, which is what
 * hono/bearer-auth accepts. At least 32 characters, so that guessing is hopeless; `openssl rand -hex 32`
 * makes 64.
 */
export const TOKEN_PATTERN = /^[A-Za-z0-9._~+/-]{32,}=*$/;
export const TOKEN_RULE =
  'a Bearer token: letters, digits and -._~+/ (then = padding), at least 32 of them, as `openssl rand -hex 32` makes';

/** What is wrong with a token that breaks the rule, in the words every part uses. */
export const tokenRuleBroken = (token: string) =>
  // A Secret made from a file, a value pasted from one: a line end is easy to carry along and hard to see.
  `must be ${TOKEN_RULE}${/\s$/.test(token) ? ' (this one ends in white space, a line end perhaps: remove it)' : ''}`;

/** The one message for a token that breaks the rule, whoever is given it (`what`: the flag or variable). */
export const tokenProblem = (what: string, token: string): string | undefined =>
  TOKEN_PATTERN.test(token) ? undefined : `${what} ${tokenRuleBroken(token)}`;

/** The agent's defaults, wherever they are applied: its config, install.sh, the EC2 CLIs. */
export const AGENT_DEFAULTS = {
  /** Every minute, on the minute. */
  schedule: '* * * * *',
  outputFile: '/root/randomNumber.txt',
  // A scale-from-zero cold start (activator, pod scheduling, image pull, app start) commonly takes
  // 2–4 s and can take much longer; 20 s covers a slow one and still leaves room for a retry per minute.
  requestTimeoutMs: 20_000,
} as const;

/** The log message of the one line the agent writes per tick. */
export const POLL_MSG = 'poll';
export type PollOutcome = 'ok' | 'failed' | 'write_failed' | 'skipped';
/** Outcomes that count as a failed poll in results. */
export const FAILED_OUTCOMES: readonly PollOutcome[] = ['failed', 'write_failed'];

/** The fields of a `poll` line, besides pino's own (`level`, `time`, `msg`, ...). */
export interface PollFields {
  /** The tick's cron time, ISO-8601. */
  scheduledAt: string;
  /** How late the poll began against its cron time. */
  driftMs: number;
  outcome: PollOutcome;
  number: number | null;
  latencyMs: number | null;
  attempts: number;
  /** The service's flag: the first number its process served (scale from zero). */
  coldStart: boolean | null;
  /** How many numbers wait in memory for the numbers file (a full disk), after this tick. */
  backlog: number;
  reason?: string;
}

/** A `poll` line as read back from a log: the fields plus pino's `time` (ms since the epoch). */
export type PollLine = PollFields & { time: number };

type LevelLogger = Record<'info' | 'warn' | 'error', (fields: object, msg: string) => void>;

/** Writes the one `poll` line of a tick; the level follows the outcome. */
export function logPoll(logger: LevelLogger, fields: PollFields & Record<string, unknown>): void {
  const level = fields.outcome === 'ok' ? 'info' : fields.outcome === 'write_failed' ? 'error' : 'warn';
  logger[level](fields, POLL_MSG);
}

/** A `poll` line out of one line of the agent's log (journald's `-o cat`), or undefined for any other. */
export function parsePollLine(line: string): PollLine | undefined {
  try {
    const entry = JSON.parse(line);
    const poll = entry?.msg === POLL_MSG && typeof entry.scheduledAt === 'string';
    return poll && typeof entry.outcome === 'string' ? entry : undefined;
  } catch {
    return undefined;
  }
}
