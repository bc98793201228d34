import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../test/helpers/net.ts';
import { track } from './children.ts';

export interface ServerSpec {
  name: string;
  /** The .mjs file node runs. */
  file: string;
  /** Extra environment on top of PATH, PORT and HOST; empty means the program's defaults. */
  env?: Record<string, string>;
}

export interface RunningServer {
  pid: number;
  url: string;
  /** From just before spawn() to the first 200 answer to GET /. */
  spawnToFirst200Ms: number;
  /** Bytes the server has written to stdout so far (drained by us, as a pod's runtime would). */
  stdoutBytes(): number;
  /** SIGTERM, then wait for exit; returns the exit and the last lines of stdout. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; tail: string }>;
}

const START_TIMEOUT_MS = 15_000;

const TAIL_BYTES = 4096;

/** One tiny GET on a fresh connection: true on a 200. Refused or failed connections are false. */
function probe(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Spawns `node <file>` (behind `prefix`, e.g. taskset) on a free port of 127.0.0.1 with stdout and
 * stderr on pipes that we drain, and polls GET / with tiny requests until the first 200.
 */
export async function startServer(
  spec: ServerSpec,
  prefix: string[] = [],
  node = process.execPath,
): Promise<RunningServer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const [command = node, ...args] = [...prefix, node, spec.file];
  const started = performance.now();
  const child = track(
    spawn(command, args, {
      env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let bytes = 0;
  let tail = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-TAIL_BYTES);
  });
  const exited = once(child, 'close').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });

  // Bounded: a refused connection answers in microseconds, so a 1 ms pause keeps the poll fine-grained
  // without spinning; this process is on the other CPU, so polling does not slow the server's start.
  for (;;) {
    if (await probe(url)) break;
    if (gone) throw new Error(`${spec.name} exited before answering: ${stderr.trim() || tail.trim()}`);
    if (performance.now() - started > START_TIMEOUT_MS) {
      child.kill('SIGKILL');
      throw new Error(`${spec.name} gave no 200 on ${url} within ${START_TIMEOUT_MS} ms`);
    }
    await sleep(1);
  }
  const spawnToFirst200Ms = performance.now() - started;

  return {
    pid: child.pid as number,
    url,
    spawnToFirst200Ms,
    stdoutBytes: () => bytes,
    async stop() {
      if (!gone) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS);
      const result = await exited;
      clearTimeout(killer);
      return { ...result, tail };
    },
  };
}
