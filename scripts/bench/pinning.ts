import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Pinning {
  /** Prepended to a server's command line: `taskset -c <cpu>`, or nothing. */
  prefix: string[];
  /** One line for the output saying what was pinned where (or why nothing was). */
  note: string;
}

/** "0-2,5" → [0, 1, 2, 5] (the format `taskset -pc` prints). */
export function parseCpuList(list: string): number[] {
  return list
    .trim()
    .split(',')
    .filter(Boolean)
    .flatMap((part) => {
      const [from, to = from] = part.split('-').map(Number) as [number, number?];
      return Array.from({ length: (to as number) - from + 1 }, (_, i) => from + i);
    });
}

/**
 * The target is "one core", so each server gets one CPU to itself and this process (which drains the
 * servers' stdout) and its children (the load generator) stay on another; otherwise the two fight over the same cores and
 * the ratio measures the scheduler. Uses util-linux taskset; without it, says so and pins nothing.
 */
export async function pinCores(pid = process.pid): Promise<Pinning> {
  let cpus: number[];
  try {
    const { stdout } = await run('taskset', ['-pc', String(pid)]);
    cpus = parseCpuList(stdout.split(':').pop() ?? '');
  } catch {
    return {
      prefix: [],
      note: 'taskset not found (util-linux): servers and load generator NOT pinned, sharing all cores',
    };
  }
  if (cpus.length < 2) {
    return { prefix: [], note: `only CPU ${cpus.join(',')} available: servers and load generator share it` };
  }
  const [generator, server] = cpus as [number, number];
  try {
    // -a: every thread of this process (libuv pool, V8 helpers), not just the main one.
    await run('taskset', ['-a', '-pc', String(generator), String(pid)]);
  } catch (err) {
    return {
      prefix: [],
      note: `taskset could not pin the load generator (${(err as Error).message.split('\n')[0]}): nothing pinned`,
    };
  }
  return {
    prefix: ['taskset', '-c', String(server)],
    note: `each server pinned to CPU ${server} (taskset -c ${server}); load generator (a child process) and stdout drain (this process) on CPU ${generator}`,
  };
}
