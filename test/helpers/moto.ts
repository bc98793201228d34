import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './net.ts';

export interface Moto {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /**
   * Environment for an AWS SDK process talking to this emulator only: dummy credentials, a region, no
   * instance metadata lookups, and no shared config files from the developer's machine.
   */
  env: Record<string, string>;
  /** What moto printed so far: its banner, then one line per request (`"PUT /latest/api/token HTTP/1.1" 200`). */
  log(): string;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

const INSTALL = "moto_server not found: install it: pip install 'moto[server]'";

/** `moto_server` when it is on PATH, else the same server through `python3 -m moto.server`. */
function motoCommand(): [string, string[]] {
  const onPath = (process.env.PATH ?? '')
    .split(delimiter)
    .some((dir) => dir && existsSync(join(dir, 'moto_server')));
  return onPath ? ['moto_server', []] : ['python3', ['-m', 'moto.server']];
}

/**
 * Starts `moto_server` (the local AWS emulator) on a free loopback port, waits until it answers, and
 * kills it when the test ends. Fails (never skips) when moto_server is missing. AWS managed IAM
 * policies (AmazonSSMManagedInstanceCore, ...) are loaded, as they exist in every real account.
 */
export async function startMoto(
  t: Teardown,
  options: { readyTimeoutMs?: number; command?: string; env?: Record<string, string> } = {},
): Promise<Moto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const [command, prefix] = options.command ? [options.command, []] : motoCommand();
  // setpriv (util-linux) asks the kernel to SIGTERM moto when this process dies: a test file that tap
  // kills on its timeout runs no teardown, and would leave the emulator running.
  const args = ['--pdeathsig', 'TERM', command, ...prefix, '-H', '127.0.0.1', '-p', String(port)];
  const child = spawn('setpriv', args, {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      MOTO_IAM_LOAD_MANAGED_POLICIES: 'true',
      ...options.env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  let gone = false;
  const failed = new Promise<never>((_, reject) => {
    child.once('close', () => {
      gone = true;
    });
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'ENOENT' ? INSTALL : `moto_server failed to start: ${err.message}`)),
    );
    child.once('close', (code) => {
      const text = stderr.join('');
      if (/No module named|failed to execute/.test(text)) reject(new Error(INSTALL));
      else reject(new Error(`moto_server exited with ${code} before answering:\n${text.slice(-2000)}`));
    });
  });
  failed.catch(() => {});
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });

  // moto prints its banner to stderr in a form that changed between versions; asking it is sturdier.
  // 60 s: a Python start that takes 2 s alone has taken over 20 s on two cores busy with test hosts.
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  const ready = (async () => {
    while (!gone) {
      try {
        const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
        await response.arrayBuffer();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`moto_server did not answer on ${endpoint} in time`);
        await delay(100);
      }
    }
  })();
  ready.catch(() => {}); // the race below reports it; no unhandled rejection when `failed` wins first
  // Not left to the teardown: a start that fails at a test file's top level ends the process before
  // any teardown runs, and the emulator would outlive it.
  await Promise.race([ready, failed]).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });

  return {
    endpoint,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    },
    log: () => stderr.join(''),
  };
}
