import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where lines go; defaults to stdout (pretty only when stdout is a terminal and pino-pretty is installed). */
  destination?: DestinationStream;
}

/**
 * Paths pino blanks before a line is written. Secrets are never logged on purpose; this is the net
 * under that rule for anything that logs a request, a config or an error carrying headers. Exact paths
 * only: wildcards cost about four times as much on every line (measured in docs/bench.md).
 */
export const REDACT_PATHS = [
  'apiToken',
  'token',
  'authorization',
  'config.apiToken',
  'headers.authorization',
  'req.headers.authorization',
];

/**
 * The one root logger of a process. Modules take `logger.child({ module })` from it.
 * JSON on stdout, as a pod or journald wants it; human-readable output only for a person at a terminal.
 */
export function createLogger({ name, level = 'info', destination }: LoggerOptions): Logger {
  const options = {
    name,
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  // Synchronous writes: a line logged just before process.exit (a forced shutdown, a fatal config
  // error) is never lost, and lines stay in order. Asynchronous writes measured no faster here,
  // because each small write went through libuv's thread pool (docs/bench.md).
  return pino(options, destination ?? prettyAtTerminal() ?? pino.destination({ sync: true }));
}

function prettyAtTerminal(): DestinationStream | undefined {
  if (!process.stdout.isTTY) return undefined;
  try {
    // pino-pretty is a dev dependency: present in a checkout, absent from the image and the EC2 bundle,
    // where output is never a terminal anyway. Loaded lazily so that bundles do not carry it.
    const require = createRequire(import.meta.url);
    const pretty = require('pino-pretty') as (options: object) => DestinationStream;
    return pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  } catch {
    return undefined;
  }
}
