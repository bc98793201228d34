import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PollLine, parsePollLine } from '../../lib/contract.ts';
import { track } from './children.ts';
import { readMemory } from './memory.ts';
import type { AgentFigures } from './report.ts';
import { median, quantile } from './stats.ts';

export interface AgentOptions {
  bundle: string;
  serviceUrl: string;
  ticks: number;
  node: string;
}

// On a one-second schedule a loopback poll takes a few ms, so 400 ms after a poll line the agent is
// idle and the next tick is still ~600 ms away.
const IDLE_PROBE_DELAY_MS = 400;

/** The agent's own `driftMs` when it logs one; else the log line's time less the poll's latency. */
function driftOf(poll: PollLine): [number, string] {
  if (typeof poll.driftMs === 'number')
    return [poll.driftMs, "the agent's `driftMs` (poll start − `scheduledAt`)"];
  const start = poll.time - (poll.latencyMs ?? 0);
  return [
    start - Date.parse(poll.scheduledAt),
    typeof poll.latencyMs === 'number'
      ? 'pino `time` − `latencyMs` − `scheduledAt` (whole ms)'
      : 'pino `time` − `scheduledAt` (includes the poll itself)',
  ];
}

/**
 * Runs the agent bundle on a one-second schedule against `serviceUrl` for `ticks` polls.
 * Drift per tick = when the poll started − when it was scheduled (see driftOf). Memory is read between ticks, when the agent is idle.
 */
export async function measureAgent({ bundle, serviceUrl, ticks, node }: AgentOptions): Promise<AgentFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-agent-'));
  const child = track(
    spawn(node, [bundle], {
      env: {
        PATH: process.env.PATH,
        SERVICE_URL: serviceUrl,
        SCHEDULE: '* * * * * *',
        OUTPUT_FILE: join(dir, 'randomNumber.txt'),
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const exited = once(child, 'close');
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const drifts: number[] = [];
  const idle: Promise<number | undefined>[] = [];
  const outcomes: Record<string, number> = {};
  let polls = 0;
  const bases = new Set<string>();
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const enough = new Promise<void>((resolve, reject) => {
    // Generous: ticks seconds, plus start-up, plus slack for a slow machine.
    const timer = setTimeout(
      () => reject(new Error(`agent logged ${polls} of ${ticks} polls in time; stderr: ${stderr.trim()}`)),
      (ticks + 15) * 1000,
    );
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`agent exited after ${polls} polls: ${stderr.trim() || 'no stderr'}`));
    });
    lines.on('line', (line) => {
      const poll = parsePollLine(line);
      if (!poll) return;
      const outcome = poll.outcome ?? 'unknown';
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      const [drift, basis] = driftOf(poll);
      drifts.push(drift);
      bases.add(basis);
      polls += 1;
      idle.push(sleep(IDLE_PROBE_DELAY_MS).then(async () => (await readMemory(child.pid as number))?.rssKb));
      if (polls >= ticks) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  try {
    await enough;
    const idleKb = (await Promise.all(idle)).filter((kb): kb is number => kb !== undefined);
    const peak = await readMemory(child.pid as number);
    return {
      ticks: polls,
      driftMedianMs: median(drifts),
      driftP95Ms: quantile(drifts, 0.95),
      idleRssKb: median(idleKb),
      peakRssKb: peak?.peakKb ?? Number.NaN,
      driftBasis: [...bases].join('; '),
      outcomes,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
    await rm(dir, { recursive: true, force: true });
  }
}
