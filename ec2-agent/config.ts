import cronParser from 'cron-parser';
import * as z from 'zod/mini';
import { AGENT_DEFAULTS, TOKEN_PATTERN, TOKEN_RULE } from '../lib/contract.ts';
import { intVar, logLevelVar, parseEnv } from '../lib/env.ts';
import { ConfigError } from '../lib/errors.ts';

// http and https URLs always have a host (WHATWG URL refuses `http://` with none).
const httpUrl = z.string().check(
  z.refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), {
    error: 'must be an http:// or https:// URL, e.g. https://random-number.example.com/',
  }),
);

const cron = z.string().check(
  z.refine((value) => cronProblem(value) === undefined, {
    error: 'must be a cron expression: 5 fields (minute hour day month weekday) or 6 with seconds first',
  }),
);

const schema = z.object({
  SERVICE_URL: httpUrl,
  SCHEDULE: z._default(cron, AGENT_DEFAULTS.schedule),
  OUTPUT_FILE: z._default(
    z.string().check(z.regex(/^[^\0]+$/, { error: 'must be a file path' })),
    AGENT_DEFAULTS.outputFile,
  ),
  API_TOKEN: z.optional(z.string().check(z.regex(TOKEN_PATTERN, { error: `must be ${TOKEN_RULE}` }))),
  API_TOKEN_PARAMETER: z.optional(
    z.string().check(
      z.regex(/^[a-zA-Z0-9_.\-/]{1,2048}$/, {
        error: 'must be an SSM parameter name (letters, digits, _ . - /), e.g. /random-number/api-token',
      }),
    ),
  ),
  REQUEST_TIMEOUT_MS: z._default(intVar(100, 600_000), AGENT_DEFAULTS.requestTimeoutMs),
  LOG_LEVEL: z._default(logLevelVar, 'info'),
});

/** Why `expression` is not a schedule node-schedule would run as cron, or undefined when it is. */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/).length;
  // cron-parser pads short expressions ("* * * *" would mean something) and node-schedule falls back
  // to reading an unparsable string as a one-off date: insist on a real 5- or 6-field expression.
  if (fields !== 5 && fields !== 6) return `has ${fields} fields`;
  try {
    cronParser.parseExpression(expression);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Reads the agent's environment once, at start. Throws ConfigError naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const parsed = parseEnv(schema, env);
  const both =
    'invalid configuration: API_TOKEN and API_TOKEN_PARAMETER are both set; set only one (API_TOKEN_PARAMETER names an SSM SecureString holding the token)';
  if (parsed.API_TOKEN !== undefined && parsed.API_TOKEN_PARAMETER !== undefined) throw new ConfigError(both);
  return {
    serviceUrl: parsed.SERVICE_URL,
    /** A cron expression node-schedule understands: 5 fields, or 6 with seconds first. */
    schedule: parsed.SCHEDULE.trim(),
    outputFile: parsed.OUTPUT_FILE,
    /** The token itself, given directly; never logged. */
    apiToken: parsed.API_TOKEN,
    /** The name of an SSM SecureString holding the token, read once at start. */
    apiTokenParameter: parsed.API_TOKEN_PARAMETER,
    requestTimeoutMs: parsed.REQUEST_TIMEOUT_MS,
    logLevel: parsed.LOG_LEVEL,
  };
}

export type AgentConfig = ReturnType<typeof loadConfig>;
