import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where lines go; defaults to stdout (pretty only when stdout is a terminal and pino-pretty is installed). */
  destination?: DestinationStream;
  /**
   * Hold up to this many bytes of lines (under 16 KiB, SonicBoom's maxWrite) before writing them to
   * stdout in one write(2), and write whatever is held every FLUSH_MS and at exit. 0 (the default):
   * every line is written as it is logged.
   * For a process that logs a line per request (the service): one write per line costs more than
   * making the line (docs/bench.md).
   */
  bufferBytes?: number;
}

/** How long a buffered line may wait for its write. */
const FLUSH_MS = 100;

/**
 * Paths pino blanks before a line is written. Secrets are never logged on purpose; this is the net
 * under that rule for anything that logs a request, a config or an error carrying headers. Exact paths
 * only: wildcards cost several times as much on every line (docs/bench.md).
 */
const REDACT_PATHS = [
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
export function createLogger({ name, level = 'info', destination, bufferBytes = 0 }: LoggerOptions): Logger {
  return pino(
    { name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } },
    destination ?? prettyAtTerminal() ?? stdout(bufferBytes),
  );
}

/**
 * Synchronous writes: a line logged just before process.exit (a forced shutdown, a fatal config
 * error) is never lost, and lines stay in order. Asynchronous writes measured no faster here, because
 * each small write went through libuv's thread pool (docs/bench.md). When buffering, SonicBoom holds
 * lines until `bufferBytes` (its minLength) and writes them every FLUSH_MS (its periodicFlush); pino
 * flushes only asynchronous destinations at exit, so what is held is written here on the 'exit' event
 * (process.exit, the end of the event loop, an uncaught exception). Only a kill by a signal with no
 * handler (SIGKILL, the OOM killer) or a crash of Node itself loses it: at most `bufferBytes`, or
 * FLUSH_MS of lines.
 */
function stdout(bufferBytes: number): DestinationStream {
  if (bufferBytes <= 0) return pino.destination({ sync: true });
  const destination = pino.destination({ sync: true, minLength: bufferBytes, periodicFlush: FLUSH_MS });
  process.on('exit', () => {
    try {
      // flush() first: its write reports an error, where flushSync (sonic-boom 4) would retry any error
      // forever and the process never exit. EPIPE (the reader gone) makes pino turn the stream into a
      // no-op; another error is thrown here. Then flushSync writes the rest, waiting out a slow reader.
      destination.flush();
      destination.flushSync();
    } catch {
      // nowhere left to write
    }
  });
  return destination;
}

function prettyAtTerminal(): DestinationStream | undefined {
  if (!process.stdout.isTTY) return undefined;
  try {
    // pino-pretty is a dev dependency: present in a checkout, absent from the image and the EC2 bundle,
    // where output is never a terminal anyway. Loaded lazily so that bundles do not carry it.
    const pretty = createRequire(import.meta.url)('pino-pretty') as (options: object) => DestinationStream;
    return pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  } catch {
    return undefined;
  }
}
