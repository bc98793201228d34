import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface Started {
  child: ChildProcess;
  /** Every stdout line so far (JSON log lines parse with `json()`). */
  stdout: string[];
  stderr: string[];
  /** Resolves with the first stdout line matching `test`, or rejects after `timeoutMs`. */
  waitForLine(test: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Starts a real process, records its output line by line and kills it when the test ends. It runs
 * under setpriv (util-linux), which asks the kernel to SIGTERM it when this process dies: a test file
 * tap kills on its timeout runs no teardown, and would leave it running. setpriv execs the command, so
 * `child.pid` is the command's own.
 */
export function startProcess(
  t: Teardown,
  command: string,
  args: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string } = {},
): Started {
  const child = spawn('setpriv', ['--pdeathsig', 'TERM', command, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, ...options.env } as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<{ test: (l: string) => boolean; resolve: (l: string) => void }>();
  // stdio is ['ignore', 'pipe', 'pipe'], so both streams exist.
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    stdout.push(line);
    for (const w of waiters) {
      if (!w.test(line)) continue;
      waiters.delete(w);
      w.resolve(line);
    }
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => stderr.push(line));
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    stdout,
    stderr,
    exited,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    waitForLine(test, timeoutMs = 10_000) {
      const seen = stdout.find(test);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(
            new Error(
              `no matching line within ${timeoutMs} ms; stdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`,
            ),
          );
        }, timeoutMs);
        const w = {
          test,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.add(w);
        exited.then(() => {
          clearTimeout(timer);
          if (waiters.delete(w)) reject(new Error(`process exited first; stderr:\n${stderr.join('\n')}`));
        });
      });
    },
  };
}

/** Parses a JSON log line; returns {} for anything else. */
export function json(line: string): Record<string, unknown> {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** Resolves once `check` returns a value other than undefined, polling; rejects after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface Output {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A child's whole output and exit status, once it has closed; rejects when it could not start. */
export function outputOf(child: ChildProcess): Promise<Output> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d;
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A command started as a terminal's foreground job: in a process group of its own, so `interrupt()`
 * is a Ctrl-C to the whole job. Its output is kept line by line; `waitFor` resolves on the first stdout
 * line that passes, or rejects if the job ends first. Killed, group and all, when the test ends. Like
 * startProcess's, it is SIGTERMed (it alone, not its group) when this process dies without a teardown.
 */
export function startForegroundJob(
  t: Teardown,
  command: string,
  args: string[],
  options: { env: Record<string, string | undefined>; cwd?: string },
) {
  const child = spawn('setpriv', ['--pdeathsig', 'TERM', command, ...args], {
    ...options,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit');
  const group = -(child.pid as number);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(group, 'SIGKILL');
  });
  const out: string[] = [];
  const err: string[] = [];
  const listeners = new Set<(line: string) => void>();
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    out.push(line);
    for (const listener of listeners) listener(line);
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => err.push(line));
  const ended = exited.then(() => {
    throw new Error(`${command} ${args.join(' ')} ended first:\n${out.join('\n')}\n${err.join('\n')}`);
  });
  ended.catch(() => {});
  return {
    group,
    out,
    err,
    exited,
    interrupt: () => process.kill(group, 'SIGINT'),
    /** Resolves once `test` has passed on a stdout line (it sees every line from now on). */
    waitFor(test: (line: string) => boolean): Promise<void> {
      const seen = new Promise<void>((resolve) => {
        const listener = (line: string) => {
          if (!test(line)) return;
          listeners.delete(listener);
          resolve();
        };
        listeners.add(listener);
      });
      return Promise.race([seen, ended]);
    },
  };
}

/** The PIDs of process `pid`'s children (from /proc); none once it is gone. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
