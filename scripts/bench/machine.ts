import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, release, type } from 'node:os';
import { ConfigError } from '../../lib/errors.ts';

export interface Machine {
  nproc: number;
  cpuModel: string;
  node: string;
  os: string;
  date: string;
}

/** The version of the node binary the servers run on; one line saying so when it cannot run. */
export function nodeVersion(node: string): string {
  try {
    return execFileSync(node, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch (err) {
    throw new ConfigError(
      `invalid configuration: BENCH_NODE ${node} cannot be run (${(err as Error).message.split('\n')[0]}); give a node binary, or leave it unset for this one`,
    );
  }
}

/** Where the figures came from: they mean little without the machine and the runtime measured. */
export function describeMachine(node = process.execPath, now = new Date()): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
    if (model) cpuModel = model.trim();
  } catch {
    // Not Linux: os.cpus() already gave the model.
  }
  return {
    nproc: availableParallelism(),
    cpuModel,
    node: nodeVersion(node),
    os: `${type()} ${release()}`,
    date: now.toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}
