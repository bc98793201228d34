import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, release, type } from 'node:os';

export interface Machine {
  nproc: number;
  cpuModel: string;
  node: string;
  os: string;
  date: string;
}

/** Where the figures came from: they mean little without the machine. */
export function describeMachine(now = new Date()): Machine {
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
    node: process.version,
    os: `${type()} ${release()}`,
    date: now.toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}
