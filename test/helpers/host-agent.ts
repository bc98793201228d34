import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliBundle } from './cli-bundle.ts';
import type { Host, Result } from './host.ts';
import type { Teardown } from './process.ts';

export const AGENT = 'random-number-agent';
/** Every two seconds: a schedule period the tests can wait out many times. */
export const FAST_SCHEDULE = '*/2 * * * * *';

/**
 * The `commands` of each `aws ssm send-command` JSON file that `npm run agent-command` writes (the
 * real CLI, pre-compiled), in order: what SSM would run on the instance.
 */
export async function agentCommandPayloads(t: Teardown, args: string[]): Promise<string[][]> {
  const out = mkdtempSync(join(tmpdir(), 'host-payloads-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const run = spawnSync(process.execPath, [await cliBundle('agent-command'), ...args, '--out', out], {
    env: { PATH: process.env.PATH, NODE_NO_WARNINGS: '1' },
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`agent-command failed: ${run.stderr}`);
  return readdirSync(out)
    .sort()
    .map((file) => (JSON.parse(readFileSync(join(out, file), 'utf8')) as Payload).Parameters.commands);
}

interface Payload {
  Parameters: { commands: string[] };
}

/** Runs each payload as SSM's AWS-RunShellScript would, in order; stops at the first failure. */
export async function runPayloads(host: Host, payloads: string[][]): Promise<Result[]> {
  const results: Result[] = [];
  for (const lines of payloads) {
    const result = await host.runShellScript(lines);
    results.push(result);
    if (result.code !== 0) break;
  }
  return results;
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

/** The lines of a file in the host (none when it does not exist). */
export function hostLines(host: Host, path: string): string[] {
  const text = host.read(path) ?? '';
  return text.split('\n').filter((line) => line !== '');
}

/** Waits until the file in the host has at least `count` lines; returns them. */
export function linesAtLeast(host: Host, path: string, count: number, timeoutMs = 20_000): Promise<string[]> {
  return eventually(
    `${count} lines in ${path}`,
    () => {
      const lines = hostLines(host, path);
      return lines.length >= count ? lines : undefined;
    },
    timeoutMs,
  );
}
