import { resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import * as z from 'zod/mini';
import { AGENT_SETTINGS, flagName, readSettings } from '../../ec2-agent/config.ts';
import { intVar, matching } from '../../lib/env.ts';
import { ConfigError } from '../../lib/errors.ts';
import { readCaCert } from './ca-cert.ts';
import { shellQuote } from './delivery.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

type FlagValues<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string;
} & { help?: boolean };

/**
 * node:util parseArgs, with its errors turned into one ConfigError line that points at --help. Its
 * defaults are what the CLIs want: strict (an unknown flag is an error) and no positionals.
 */
export function parseFlags<O extends Options>(argv: string[], options: O): FlagValues<O> {
  // `npm run teardown-ec2 --name x`, without `--`: npm keeps the flags as its own settings, exports them
  // as npm_config_name=x and runs the command bare, which would then act on the default deployment.
  const npm = (name: string) => process.env[`npm_config_${name.replaceAll('-', '_')}`];
  const taken = Object.keys(options).filter((name) => npm(name) !== undefined);
  // Each as it should have been typed: a toggle's value is `true`, and a token is never shown.
  const typed = (name: string, v = npm(name) ?? '') =>
    v === 'true' ? `--${name}` : `--${name} ${name === 'api-token' ? 'TOKEN' : shellQuote(v)}`;
  if (taken.length > 0)
    throw new ConfigError(
      `npm took ${taken.map((name) => `--${name}`).join(', ')} as its own settings and did not pass them on: put the flags after --, e.g. npm run ${process.env.npm_lifecycle_event ?? 'COMMAND'} -- ${taken.map((name) => typed(name)).join(' ')}`,
    );
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message.split(/\.\s/)[0]}; see --help`, { cause: err });
  }
  // `--subnet "$SUBNET"` with SUBNET unset must not quietly mean the default subnet.
  const empty = Object.entries(values).find(([, value]) => String(value).trim() === '');
  if (empty)
    throw new ConfigError(`--${empty[0]} is empty: give it a value, or leave the flag out for its default`);
  return values as FlagValues<O>;
}

/** A flag as the CLIs declare it: its parseArgs type and its --help line (`arg` names the value). */
type Flag = { type: 'string' | 'boolean'; arg?: string; help: string };

export const flag = (arg: string, help: string) => ({ type: 'string', arg, help }) as const;
export const toggle = (help: string) => ({ type: 'boolean', help }) as const;

/** The agent's settings that are flags (ec2-agent/config.ts), by setting name. */
const FLAGGED = Object.entries(AGENT_SETTINGS).flatMap(([name, s]) =>
  'flag' in s ? [[name, s.flag] as const] : [],
);
const SETTING_FLAGS = Object.fromEntries(FLAGGED.map(([name, f]) => [flagName(name), flag(f.arg, f.help)]));

/** The agent's flags, shared by provision-ec2 and agent-command: its settings, then the delivery's. */
export const AGENT_FLAGS = {
  ...SETTING_FLAGS,
  'ca-cert': flag(
    'FILE',
    'a PEM CA the agent trusts besides the public CAs, for the service only\n(one behind a private certificate, e.g. certs/ca.crt from make tls-cert);\na re-run without it keeps the installed one; --ca-cert none removes it',
  ),
  'allow-plain-http': toggle('let the agent send its API token to an http:// service URL, in clear'),
  bundle: flag('FILE', 'agent bundle (default dist/ec2-agent.mjs, from `npm run build`)'),
  'install-script': flag('FILE', 'default ec2-agent/install.sh'),
};

/** The flags of every command that calls AWS. */
const AWS_FLAGS = {
  name: flag('NAME', 'resources are named and tagged NAME (default random-number)'),
  region: flag('REGION', "AWS region (default: AWS_REGION or your profile's region)"),
  profile: flag(
    'NAME',
    'AWS profile for credentials and region, as the AWS CLI uses it\n(default AWS_PROFILE)',
  ),
  'poll-interval-ms': flag('N', 'how often waits poll at first (default 5000; small against an emulator)'),
};

/** The process's flags; on --help, prints `usage`, a line per flag and `end`, and returns undefined. */
export function cliFlags<O extends Record<string, Flag>>(usage: string, flags: O, end = '') {
  const values = parseFlags(process.argv.slice(2), flags);
  if (!values.help) return values;
  const lines = Object.entries(flags).map(([name, { arg = '', help }]) =>
    `  ${`--${name} ${arg}`.padEnd(24)}${help.replaceAll('\n', `\n${' '.repeat(26)}`)}`.trimEnd(),
  );
  process.stdout.write(`${usage}\n${lines.join('\n')}\n  -h, --help              this text\n${end}`);
}

/** cliFlags for a command that calls AWS: `flags` and AWS_FLAGS, and where the credentials come from. */
export function awsCliFlags<O extends Record<string, Flag>>(usage: string, flags: O) {
  const end =
    '\nCredentials come from the usual AWS chain: --profile or AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, ...\n';
  return cliFlags(usage, { ...flags, ...AWS_FLAGS }, end);
}

/** A token must not cross the network in clear unless the caller said so (--allow-plain-http). */
export function refusePlainHttp(serviceUrl: string, allowed: boolean, why = '') {
  if (allowed || new URL(serviceUrl).protocol !== 'http:') return;
  throw new ConfigError(
    `--service-url ${serviceUrl} is http://: the agent would send its API token${why} in clear; use https://, or pass --allow-plain-http to accept that`,
  );
}

/**
 * The agent's settings from AGENT_FLAGS, checked with the agent's own schemas (its words, the flag's
 * name) so that a bad one fails before anything is created or sent.
 */
export async function agentSettings(
  flags: Record<string, string | boolean | undefined>,
  withToken = Boolean(flags['api-token-parameter']),
) {
  // Only the settings that are flags: provision-ec2's --api-token fills a parameter, it is not API_TOKEN.
  const given = Object.fromEntries(
    FLAGGED.map(([name]) => [name, flags[flagName(name)] as string | undefined]),
  );
  const settings = readSettings(given, (name) => `--${flagName(name)}`);
  const allowPlainHttp = Boolean(flags['allow-plain-http']);
  if (withToken) refusePlainHttp(settings.SERVICE_URL, allowPlainHttp);
  const path = (flag: string) => (typeof flags[flag] === 'string' ? fromCaller(flags[flag]) : undefined);
  return {
    settings,
    allowPlainHttp,
    caCert: await readCaCert(flags['ca-cert'] === 'none' ? 'none' : path('ca-cert')),
    bundlePath: path('bundle'),
    installScriptPath: path('install-script'),
  };
}

/**
 * A FILE or DIR flag as an absolute path. npm runs the CLIs from the checkout's root; INIT_CWD is where
 * the caller was, and so what `--ca-cert ca.crt` means to them.
 */
export const fromCaller = (path: string) => resolve(process.env.INIT_CWD ?? '', path);

/** --name when none is given. */
export const DEFAULT_NAME = 'random-number';

/** `value` checked with a schema of lib/env.ts or the agent's, in its words, under the flag's name. */
export function checkFlag<T>(flag: string, schema: z.ZodMiniType<T>, value: string | undefined): T {
  const parsed = z.safeParse(schema, value);
  if (!parsed.success)
    throw new ConfigError(`${flag} ${parsed.error.issues[0]?.message} (got ${JSON.stringify(value)})`);
  return parsed.data;
}

/** --poll-interval-ms (a name users' scripts use) as the waits' first delay, in seconds as every wait takes it. */
export const parseDelaySeconds = (value: string | undefined) =>
  checkFlag('--poll-interval-ms', intVar(10, 60_000), value ?? '5000') / 1000;

// Used as a security group name, in the IAM role name `<name>-agent` and in an SSM parameter path.
const NAME = matching(
  /^[a-zA-Z][a-zA-Z0-9-]{0,40}$/,
  'must be 1–41 letters, digits or dashes, starting with a letter',
);
export const parseName = (value = DEFAULT_NAME) => checkFlag('--name', NAME, value);

const INSTANCE_TYPE = matching(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must look like t3.micro');
export const parseInstanceType = (value = 't3.micro') => checkFlag('--instance-type', INSTANCE_TYPE, value);
