import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

export interface Memory {
  /** Resident set size now, in KiB. */
  rssKb: number;
  /** Peak resident set size so far (VmHWM), in KiB; undefined where only `ps` answers. */
  peakKb: number | undefined;
}

/**
 * Resident memory of `pid`: /proc/<pid>/status on Linux (VmRSS, VmHWM), else `ps -o rss=` (macOS,
 * BSD), else undefined. Never throws: a benchmark prints "n/a" rather than dying over a figure.
 */
export async function readMemory(pid: number): Promise<Memory | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
    if (rss !== undefined) return { rssKb: Number(rss), peakKb: hwm === undefined ? undefined : Number(hwm) };
  } catch {
    // No /proc (not Linux) or the process is gone: try ps.
  }
  try {
    const { stdout } = await promisify(execFile)('ps', ['-o', 'rss=', '-p', String(pid)]);
    const kb = Number(stdout.trim());
    return Number.isFinite(kb) && kb > 0 ? { rssKb: kb, peakKb: undefined } : undefined;
  } catch {
    return undefined;
  }
}

/** Samples VmRSS every `everyMs` until stopped; resolves with the highest value seen (KiB). */
export function sampleMemory(pid: number, everyMs = 200): { stop(): Promise<number | undefined> } {
  let peak: number | undefined;
  const take = async () => {
    const m = await readMemory(pid);
    if (m) peak = Math.max(peak ?? 0, m.rssKb);
  };
  const timer = setInterval(() => void take(), everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await take();
      return peak;
    },
  };
}
