import { ConfigError, TransientError } from './errors.ts';

/** AWS's names for a call the caller's IAM policies do not allow: IAM and STS, EC2, SSM. */
const DENIED = new Set(['AccessDenied', 'UnauthorizedOperation', 'AccessDeniedException']);
const GRANT =
  "these credentials' IAM policy must allow it (the operator policy is docs/iam-policy.json; docs/iam.md says who needs what), then run again";
/** Node's codes for a call that got no answer at all: no connection, no such host, a URL that is none. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ERR_INVALID_URL']);
const REACH =
  'AWS did not answer: check AWS_ENDPOINT_URL (unset for AWS itself; a whole URL such as http://127.0.0.1:5000 for an emulator), the network and any proxy';

/**
 * The SDK's error for an answer it cannot read (a proxy's HTML page, a server that is not AWS): its own
 * message points at a field only code can inspect, so say what the answer was and where to look. AWS's
 * own errors, read fine, carry `$fault`.
 */
function unreadable(err: unknown): string | undefined {
  const raw = (err as { $response?: { statusCode?: number; headers?: Record<string, string> } })?.$response;
  if (!raw || '$fault' in (err as object)) return undefined;
  const type = raw.headers?.['content-type'] ?? 'no content type';
  return `an AWS call got an answer AWS would not send (HTTP ${raw.statusCode}, ${type}): check AWS_ENDPOINT_URL, AWS_REGION and any proxy between here and AWS`;
}

/**
 * Runs a process's main function and turns known failures into one clear line on stderr and exit
 * code 1, never a stack trace. Unknown errors are printed with their message only, then exit 1;
 * set DEBUG=1 to see the stack. `configExitCode` sets the status of a ConfigError: the agent uses 78
 * (EX_CONFIG, which its systemd unit does not restart), the EC2 CLIs 2 (runCli). `denied` follows
 * the message of an AWS call the caller's IAM policies refused (DENIED): what grants it; `unreachable`
 * that of a call that got no answer (UNREACHABLE): where to look.
 */
export function runMain(
  name: string,
  main: () => unknown | Promise<unknown>,
  options: { configExitCode?: number; denied?: string; unreachable?: string } = {},
): void {
  // The AWS SDK's multi-line "upgrade to Node 22" notice would bury the one-line errors below; Node 20 is
  // supported here on purpose (production runs 22, where it never shows). The SDK reads this variable when
  // a client is built, so every entry point sets it here; a user's own value wins.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // `npm run provision-ec2 | head`, or `make try-ec2 | tee` stopped with Ctrl-C: a reader that goes early
  // loses the rest of the output, not the work or its clean-up (an instance half provisioned, a test host
  // left running), and the exit status stays the work's (stderr too: after `2>&1 | head` the error line
  // would meet EPIPE and turn exit 2 into 1).
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  Promise.resolve()
    .then(main)
    .catch((err: unknown) => {
      process.exitCode = err instanceof ConfigError ? (options.configExitCode ?? 1) : 1;
      // Known failures are their message alone; anything else also says what it is, and where with DEBUG.
      const known = err instanceof ConfigError || err instanceof TransientError;
      const message =
        unreadable(err) ??
        (err instanceof Error ? (known ? err.message : `${err.name}: ${err.message}`) : String(err));
      const { name: type = '', code = '' } = (err ?? {}) as NodeJS.ErrnoException;
      const hint = DENIED.has(type) ? options.denied : UNREACHABLE.has(code) ? options.unreachable : '';
      process.stderr.write(`${name}: ${message}${hint ? `: ${hint}` : ''}\n`);
      if (!known && process.env.DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    });
}

/**
 * runMain for the EC2 CLIs: what the caller gave them (flags, environment, credentials) and cannot work
 * exits 2, so a script can tell "fix the input" from 1, a failure while working: an AWS call denied
 * midway is 1 (what the steps before it made stays, and a rerun finds it).
 */
export const runCli = (name: string, main: () => unknown | Promise<unknown>) =>
  runMain(name, main, { configExitCode: 2, denied: GRANT, unreachable: REACH });
