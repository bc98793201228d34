import * as z from 'zod/mini';
import { TOKEN_PATTERN, tokenRuleBroken } from './contract.ts';
import { ConfigError } from './errors.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Variables whose values are secrets: their values never appear in an error message. */
const SECRET = /TOKEN|SECRET|PASSWORD|KEY/i;

/**
 * Parses `env` with a zod object schema whose keys are variable names (zod/mini: it keeps the bundles
 * that SSM has to carry small). On failure throws one ConfigError whose message names each bad
 * variable (as `label` shows it: a CLI names its flag), what is allowed and (unless secret) what it got.
 */
export function parseEnv<S extends z.ZodMiniObject>(
  schema: S,
  env: Record<string, string | undefined>,
  label: (name: string) => string = (name) => name,
): z.infer<S> {
  // An empty variable means "not set": `FOO= node server.js` gets the default, not an error.
  const present = Object.fromEntries(
    Object.keys(schema.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const result = z.safeParse(schema, present);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? 'environment');
    const got = present[name];
    // Nor a URL's user:password.
    const secret = SECRET.test(name) || /\/\/[^/]*@/.test(got ?? '');
    const shown = got === undefined || secret ? '' : ` (got ${JSON.stringify(got)})`;
    const message = got === undefined ? 'is required' : issue.message;
    return `${label(name)} ${message}${shown}`;
  });
  throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
}

/** A string that matches `pattern`; `error` says what it must be. */
export const matching = (pattern: RegExp, error: z.core.$ZodCheckRegexParams['error']) =>
  z.string().check(z.regex(pattern, { error }));

/** An API token (lib/contract.ts's rule), as the service and the agent read it. */
export const tokenVar = matching(TOKEN_PATTERN, (issue) => tokenRuleBroken(String(issue.input)));

/** A whole number within [min, max]. */
export function intVar(min: number, max: number) {
  const inRange = (value: string) => /^\d+$/.test(value) && Number(value) >= min && Number(value) <= max;
  const error = `must be a whole number from ${min} to ${max}`;
  return z.pipe(z.string().check(z.refine(inRange, { error })), z.transform(Number));
}

/** Any case (`DEBUG` as well as `debug`): pino's own names are lower case. */
export const logLevelVar = z.pipe(
  z.string().check(z.toLowerCase()),
  z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }),
);
