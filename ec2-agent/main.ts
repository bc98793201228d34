import { userInfo } from 'node:os';
import { runMain } from '../lib/cli.ts';
import { ConfigError } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { checkSettings, loadConfig } from './config.ts';
import { createPoller } from './poll.ts';
import { createScheduler } from './scheduler.ts';
import { createFileSink, openForAppend } from './sink.ts';
import { resolveToken } from './token.ts';

/**
 * How long SIGTERM/SIGINT waits for a poll in flight before aborting it. Under the unit's
 * TimeoutStopSec (40 s), so systemd never has to SIGKILL us.
 */
const SHUTDOWN_GRACE_MS = 25_000;

const USAGE =
  'the agent takes no arguments but --check [SETTING ...]; its settings come from the environment (docs/agent.md)';

const EXTRA_CA_WARNING =
  'NODE_EXTRA_CA_CERTS is set: Node trusts its CAs for every TLS connection of the agent, its AWS calls included; SERVICE_CA_FILE=<PEM file> trusts a CA for the service alone';

/** The agent's only edge: config, token, wiring, signals. */
runMain(
  'random-number-agent',
  async () => {
    // install.sh's check before it changes anything: the settings as the agent would run, or exit 78.
    const [first, ...names] = process.argv.slice(2);
    if (first === '--check') return void process.stdout.write(checkSettings(process.env, names));
    // A mistyped --check must not start the agent (and append numbers) instead.
    if (first !== undefined) throw new ConfigError(`unknown argument "${first}": ${USAGE}`);
    const config = loadConfig();
    const logger = createLogger({ name: 'random-number-agent', level: config.logLevel });
    const log = logger.child({ module: 'agent' });
    await checkWritable(config.outputFile);
    const token = await resolveToken(config);

    const { serviceUrl: url, requestTimeoutMs: attemptTimeoutMs } = config;
    const scheduler = createScheduler({
      schedule: config.schedule,
      poll: createPoller({ url, token, attemptTimeoutMs, ca: config.serviceCa }),
      sink: createFileSink({ path: config.outputFile }),
      logger,
    });
    scheduler.start();
    log.info(
      {
        serviceUrl: config.serviceUrl,
        schedule: config.schedule,
        outputFile: config.outputFile,
        requestTimeoutMs: config.requestTimeoutMs,
        auth: token ? (config.apiTokenParameter ? 'bearer (SSM parameter)' : 'bearer') : 'none',
        // Shown so a TLS failure can be matched with what was trusted.
        serviceCaFile: config.serviceCaFile ?? null,
        nextTick: scheduler.nextTick(),
        node: process.version,
      },
      'started',
    );
    // A user's own: it reaches past the service, to the token read from SSM.
    if (process.env.NODE_EXTRA_CA_CERTS) log.warn(EXTRA_CA_WARNING);

    let stopping = false;
    const stop = async (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, busy: scheduler.busy(), graceMs: SHUTDOWN_GRACE_MS }, 'stopping: no new polls');
      log.info({ outcome: await scheduler.stop(SHUTDOWN_GRACE_MS) }, 'stopped');
      process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
  // sysexits' EX_CONFIG: the configuration install.sh wrote is wrong, and restarting cannot fix it. The
  // unit's RestartPreventExitStatus=78 stops systemd from trying; any other failure (the token parameter
  // unreadable at boot, the network down) exits 1 and is retried.
  { configExitCode: 78 },
);

/**
 * Fail at start, with one clear line, rather than on every tick, when the file cannot be opened for
 * appending (a folder by that name, no write permission): opened as the sink opens it.
 */
async function checkWritable(file: string): Promise<void> {
  try {
    await (await openForAppend(file)).close();
  } catch (err) {
    throw new ConfigError(
      `OUTPUT_FILE ${file} cannot be opened for appending as ${userName()} (${(err as Error).message}); give a file path whose folder that user can write`,
    );
  }
}

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.()}`;
  }
}
