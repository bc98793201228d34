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

/** agent-command's flags for an agent that polls `serviceUrl` on FAST_SCHEDULE, then `more`. */
export const fastAgent = (serviceUrl: string, ...more: string[]) => [
  '--service-url',
  serviceUrl,
  '--schedule',
  FAST_SCHEDULE,
  ...more,
];

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
