import { type ParseArgsConfig, parseArgs } from 'node:util';
import { cronProblem } from '../../ec2-agent/config.ts';
import { AGENT_DEFAULTS } from '../../lib/contract.ts';
import { ConfigError } from '../../lib/errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util parseArgs, strict, with its errors turned into one ConfigError line that points at --help.
 * Returns `undefined` when --help was asked for (the caller prints its usage).
 */
export type FlagValues<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string;
} & { help?: boolean };

export function parseFlags<O extends Options>(argv: string[], options: O): FlagValues<O> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
    return values as FlagValues<O>;
  } catch (err) {
    const message = (err as Error).message.split('. ')[0];
    throw new ConfigError(`${message}; see --help`, { cause: err });
  }
}

export function parseName(value: string | undefined): string {
  const name = value ?? 'random-number';
  // Used as a security group name, in the IAM role name `<name>-agent` and in an SSM parameter path.
  if (!/^[a-zA-Z][a-zA-Z0-9-]{0,40}$/.test(name)) {
    throw new ConfigError(
      `--name must be 1–41 letters, digits or dashes, starting with a letter (got ${JSON.stringify(name)})`,
    );
  }
  return name;
}

export function parseIntFlag(
  flag: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(
      `${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`,
    );
  }
  return Number(value);
}

export function parseServiceUrl(value: string | undefined): string {
  if (!value) {
    throw new ConfigError(
      '--service-url is required: the URL of the random-number service the agent polls (e.g. https://random-number.default.example.com)',
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`--service-url must be an http(s) URL (got ${JSON.stringify(value)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`--service-url must be an http(s) URL (got ${JSON.stringify(value)})`);
  }
  return value;
}

/**
 * The agent's own check (ec2-agent/config.ts), run here so that a bad schedule fails before anything is
 * created or sent, not on the instance after the whole delivery.
 */
export function parseSchedule(value: string | undefined): string {
  const schedule = (value ?? AGENT_DEFAULTS.schedule).trim();
  const problem = cronProblem(schedule);
  if (problem !== undefined) {
    throw new ConfigError(
      `--schedule must be a cron expression of 5 fields (minute hour day month weekday) or 6 with seconds first, e.g. '*/5 * * * *' (got ${JSON.stringify(value)}: ${problem})`,
    );
  }
  return schedule;
}

/** The agent's output file: an absolute path install.sh accepts (it also checks, on the instance). */
export function parseOutputFile(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^\/[^\s]*[^/\s]$/.test(value)) {
    throw new ConfigError(
      `--output-file must be an absolute file path without spaces, e.g. /var/lib/random-number/numbers.txt (got ${JSON.stringify(value)})`,
    );
  }
  return value;
}

export function parseInstanceType(value: string | undefined): string {
  const type = value ?? 't3.micro';
  if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(type)) {
    throw new ConfigError(`--instance-type must look like t3.micro (got ${JSON.stringify(type)})`);
  }
  return type;
}
