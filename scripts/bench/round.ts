import { setTimeout as sleep } from 'node:timers/promises';
import { readCpuMs } from './cpu.ts';
import { type LoadOptions, runLoad } from './load.ts';
import { readMemory, sampleMemory } from './memory.ts';
import { type ServerSpec, startServer } from './server-process.ts';

export interface RoundOptions extends LoadOptions {
  warmupS: number;
  /** Command prefix that pins the server to its CPU (taskset), or empty. */
  prefix: string[];
  /** The node binary the server runs on. */
  node: string;
}

export interface RoundFigures {
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  spawnToFirst200Ms: number;
  /** KiB; NaN where no memory figure could be read. */
  idleRssKb: number;
  loadedRssKb: number;
  /** Server CPU time (user + system) per measured request, µs; NaN off Linux. */
  cpuUsPerRequest: number;
  /** stdout bytes per measured request: the per-request log volume. */
  logBytesPerRequest: number;
  problems: number;
  /** The server's last stdout lines after SIGTERM (to check that the shutdown line arrives). */
  tail: string;
  exitCode: number | null;
}

// After the first 200 the process is still settling (lazy modules, first GC); this lets it go idle.
const SETTLE_MS = 300;

/** One fresh process: start, idle memory, warm-up, measured load (memory sampled), SIGTERM. */
export async function measureRound(spec: ServerSpec, options: RoundOptions): Promise<RoundFigures> {
  const server = await startServer(spec, options.prefix, options.node);
  try {
    await sleep(SETTLE_MS);
    const idle = await readMemory(server.pid);
    if (options.warmupS > 0) await runLoad(server.url, { ...options, durationS: options.warmupS });
    const sampler = sampleMemory(server.pid);
    const before = server.stdoutBytes();
    const cpuBefore = await readCpuMs(server.pid);
    const load = await runLoad(server.url, options);
    const cpuAfter = await readCpuMs(server.pid);
    const loadedRss = await sampler.stop();
    const logBytes = server.stdoutBytes() - before;
    const stopped = await server.stop();
    return {
      requestsPerS: load.requestsPerS,
      p50Ms: load.p50Ms,
      p99Ms: load.p99Ms,
      spawnToFirst200Ms: server.spawnToFirst200Ms,
      idleRssKb: idle?.rssKb ?? Number.NaN,
      loadedRssKb: loadedRss ?? Number.NaN,
      cpuUsPerRequest:
        cpuBefore !== undefined && cpuAfter !== undefined && load.responses > 0
          ? ((cpuAfter - cpuBefore) * 1000) / load.responses
          : Number.NaN,
      logBytesPerRequest: load.responses > 0 ? logBytes / load.responses : Number.NaN,
      problems: load.problems,
      tail: stopped.tail,
      exitCode: stopped.code,
    };
  } finally {
    await server.stop();
  }
}
