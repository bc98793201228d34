import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import cronParser from 'cron-parser';
import * as z from 'zod/mini';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { intVar, logLevelVar, matching, parseEnv, tokenVar } from '../lib/env.ts';
import { ConfigError } from '../lib/errors.ts';

// http and https URLs always have a host (WHATWG URL refuses `http://` with none).
const httpUrl = z.string().check(
  z.refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), {
    error: 'must be an http:// or https:// URL, e.g. https://random-number.example.com/',
  }),
  // fetch refuses to build a request from such a URL: every poll would fail, naming the password.
  z.refine((value) => !URL.canParse(value) || `${new URL(value).username}${new URL(value).password}` === '', {
    error:
      'must not carry a user name or password (fetch refuses such URLs); the service takes a token (API_TOKEN)',
  }),
);

const cron = z.string().check(
  z.refine((value) => cronProblem(value) === undefined, {
    error: (issue) =>
      `must be a cron expression: 5 fields (minute hour day month weekday) or 6 with seconds first, e.g. '*/5 * * * *' (${cronProblem(String(issue.input))})`,
  }),
);

// It becomes a BindPaths= line of the unit, where `:` separates options: only plain path characters,
// segment by segment, none empty, `.` or `..`: one spelling per file, so /./proc and //proc cannot
// slip past the /proc guard.
// Not under /proc, where Node's recursive mkdir (the sink makes the folder) loops forever on ENOENT.
const outputFile = matching(
  /^(?!\/proc(\/|$))(\/(?!\.\.?(\/|$))[\w.-]+)+$/,
  'must be an absolute file path of letters, digits and ._-/ without .., . or empty segments, outside /proc, not ending in /, e.g. /root/randomNumber.txt',
);

const caFile = z
  .string()
  .check(z.refine((path) => !caFileProblem(path), { error: (issue) => caFileProblem(String(issue.input)) }));

const help = (arg: string, text: string) => ({ arg, help: text });

/**
 * Every setting of the agent, once: its environment variable, its schema (with the default), and the
 * flag provision-ec2 and agent-command take for it (`--` and the name in kebab case: SCHEDULE is
 * --schedule), with its help line. The CLIs check a flag with the very schema the agent uses; install.sh
 * takes the same flags and asks the bundle to check them (`--check`), so nothing is checked twice in
 * other words. API_TOKEN has no flag: a secret on a command line ends up in SSM's command history.
 */
export const AGENT_SETTINGS = {
  SERVICE_URL: { schema: httpUrl, flag: help('URL', 'the random-number service the agent polls (required)') },
  SCHEDULE: {
    schema: z._default(cron, AGENT_DEFAULTS.schedule),
    flag: help('CRON', `the agent's cron schedule (default '${AGENT_DEFAULTS.schedule}': every minute)`),
  },
  OUTPUT_FILE: {
    schema: z._default(outputFile, AGENT_DEFAULTS.outputFile),
    flag: help('PATH', `where the agent appends the numbers (default ${AGENT_DEFAULTS.outputFile})`),
  },
  API_TOKEN: { schema: z.optional(tokenVar) },
  API_TOKEN_PARAMETER: {
    schema: z.optional(
      matching(
        /^[a-zA-Z0-9_.\-/]{1,2048}$/,
        'must be an SSM parameter name (letters, digits, _ . - /), e.g. /random-number/api-token',
      ),
    ),
    flag: help('P', 'SSM SecureString the agent reads its API token from'),
  },
  // Not a flag: the CLIs take --ca-cert <local PEM>, and install.sh installs it where this points.
  SERVICE_CA_FILE: { schema: z.optional(caFile) },
  // Not a flag of the CLIs: they pass their own region (install.sh's --aws-region).
  AWS_REGION: { schema: z.optional(matching(/^[a-z0-9-]+$/, 'must look like us-east-1')) },
  REQUEST_TIMEOUT_MS: {
    schema: z._default(intVar(100, 600_000), AGENT_DEFAULTS.requestTimeoutMs),
    flag: help(
      'MS',
      `how long one attempt may take (default ${AGENT_DEFAULTS.requestTimeoutMs}: a cold start)`,
    ),
  },
  LOG_LEVEL: {
    schema: z._default(logLevelVar, 'info'),
    flag: help('LEVEL', 'fatal, error, warn, info (default), debug, trace or silent'),
  },
};

type Settings = typeof AGENT_SETTINGS;
export type SettingName = keyof Settings;
const schema = z.object(
  Object.fromEntries(Object.entries(AGENT_SETTINGS).map(([name, s]) => [name, s.schema])) as {
    [N in SettingName]: Settings[N]['schema'];
  },
);

/** SCHEDULE → schedule, OUTPUT_FILE → output-file: the flag of a setting, without the dashes. */
export const flagName = (name: string) => name.toLowerCase().replaceAll('_', '-');

/** Why `expression` is not a schedule node-schedule would run as cron, or undefined when it is. */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/).length;
  // cron-parser pads short expressions ("* * * *" would mean something) and node-schedule falls back
  // to reading an unparsable string as a one-off date: insist on a real 5- or 6-field expression.
  if (fields !== 5 && fields !== 6) return `has ${fields} field${fields === 1 ? '' : 's'}`;
  try {
    cronParser.parseExpression(expression);
  } catch (err) {
    return (err as Error).message;
  }
}

/** What is wrong with `path` as a file of PEM CA certificates and what to do, or undefined if nothing. */
function caFileProblem(path: string): string | undefined {
  try {
    // Its first certificate parses: a file of none would quietly trust nothing more.
    new X509Certificate(readFileSync(path));
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    const why = code?.startsWith('ERR_OSSL') ? `no PEM certificate in it (${message})` : message;
    return `must be a readable file of PEM CA certificates (the CA of the service's certificate, e.g. certs/ca.crt from make tls-cert): ${why}`;
  }
}

/**
 * The settings by variable name, defaults applied. Throws one ConfigError naming each bad one, by
 * `label` (the variable, or a CLI's flag).
 */
export function readSettings(env: Record<string, string | undefined>, label = (name: string) => name) {
  const settings = parseEnv(schema, env, label);
  // Each is a line of --check's output and of the unit's agent.env: a line break its schema lets through
  // (the \r of `$(cat url.txt)` from a CRLF file, say) would cut it or add another. Here, so that the
  // CLIs refuse it up front too.
  const multiline = Object.keys(AGENT_SETTINGS).find((name) => /[\r\n]/.test(env[name] ?? ''));
  if (multiline) throw new ConfigError(`invalid configuration: ${label(multiline)} must be on one line`);
  if (settings.API_TOKEN !== undefined && settings.API_TOKEN_PARAMETER !== undefined) {
    throw new ConfigError(
      'invalid configuration: API_TOKEN and API_TOKEN_PARAMETER are both set; set only one (API_TOKEN_PARAMETER names an SSM SecureString holding the token)',
    );
  }
  return settings;
}

/**
 * `ec2-agent.mjs --check [NAME...]`, what install.sh runs before it changes anything: the settings the
 * agent would start with, a `NAME=value` line each (API_TOKEN never), or the agent's own ConfigError.
 * NAMEs are the settings install.sh was given, so a misspelt flag is refused, not ignored.
 */
export function checkSettings(env: Record<string, string | undefined>, given: string[]): string {
  const unknown = given.filter((name) => !(name in AGENT_SETTINGS) || name === 'API_TOKEN');
  if (unknown.length > 0) {
    // install.sh's flags: not the token (none on purpose), nor the CA file (its --extra-ca-certs sets it).
    const known = Object.keys(AGENT_SETTINGS).filter((name) => !/^(API_TOKEN|SERVICE_CA_FILE)$/.test(name));
    const flags = (names: string[]) => names.map((n) => `--${flagName(n)}`).join(', ');
    throw new ConfigError(`unknown setting ${flags(unknown)}; known: ${flags(known)}`);
  }
  return Object.entries(readSettings(env))
    .filter(([name, value]) => name !== 'API_TOKEN' && value !== undefined)
    .map(([name, value]) => `${name}=${value}\n`)
    .join('');
}

/** Reads the agent's environment once, at start. Throws ConfigError naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const settings = readSettings(env);
  return {
    serviceUrl: settings.SERVICE_URL,
    /** A cron expression node-schedule understands: 5 fields, or 6 with seconds first. */
    schedule: settings.SCHEDULE.trim(),
    outputFile: settings.OUTPUT_FILE,
    /** The token itself, given directly; never logged. */
    apiToken: settings.API_TOKEN,
    /** The name of an SSM SecureString holding the token, read once at start. */
    apiTokenParameter: settings.API_TOKEN_PARAMETER,
    /** CA certificates (PEM) trusted, besides Node's built-in roots, for the service's requests only. */
    serviceCaFile: settings.SERVICE_CA_FILE,
    serviceCa: settings.SERVICE_CA_FILE && readFileSync(settings.SERVICE_CA_FILE, 'utf8'),
    requestTimeoutMs: settings.REQUEST_TIMEOUT_MS,
    logLevel: settings.LOG_LEVEL,
  };
}

export type AgentConfig = ReturnType<typeof loadConfig>;
