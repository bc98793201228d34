import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { track } from './children.ts';

const WORKER = resolve(import.meta.dirname, 'load-worker.mjs');

export interface LoadOptions {
  durationS: number;
  connections: number;
}

export interface LoadResult {
  /** Mean of autocannon's per-second samples of completed requests. */
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** 200 answers received: what server CPU time is divided by. */
  responses: number;
  /** Connection errors, timeouts and non-2xx answers: any of these makes the figures suspect. */
  problems: number;
}

/**
 * Keep-alive GET / load from a separate process (load-worker.mjs, autocannon): the bench process
 * drains the servers' stdout, and log volume must not slow the load generator. The worker inherits
 * this process's CPU affinity, so it stays off the server's core.
 */
export async function runLoad(url: string, { durationS, connections }: LoadOptions): Promise<LoadResult> {
  const run = promisify(execFile)(process.execPath, [WORKER, url, String(connections), String(durationS)], {
    timeout: (durationS + 30) * 1000,
  });
  track(run.child);
  const { stdout } = await run;
  const parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Partial<LoadResult>;
  const num = (n: unknown) => (typeof n === 'number' ? n : Number.NaN);
  return {
    requestsPerS: num(parsed.requestsPerS),
    p50Ms: num(parsed.p50Ms),
    p99Ms: num(parsed.p99Ms),
    responses: num(parsed.responses),
    problems: num(parsed.problems),
  };
}
