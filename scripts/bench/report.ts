import type { Machine } from './machine.ts';
import type { RoundFigures } from './round.ts';
import { median, ratio } from './stats.ts';

export const TARGETS = {
  /** Service requests/s at least this share of the baseline's. */
  throughputRatio: 0.9,
  /** Service spawn-to-first-200 at most this multiple of the baseline's. */
  startRatio: 1.2,
} as const;

/** Medians over rounds: a round's figures without its per-run details. */
export type Summary = Omit<RoundFigures, 'tail' | 'exitCode'>;

export interface AgentFigures {
  ticks: number;
  driftMedianMs: number;
  driftP95Ms: number;
  idleRssKb: number;
  peakRssKb: number;
  /** How drift was taken, in words (depends on the fields the agent logs). */
  driftBasis: string;
  outcomes: Record<string, number>;
}

/** Medians over rounds, except problems (summed: one failed request anywhere matters). */
export function summarize(rounds: readonly RoundFigures[]): Summary {
  const m = (pick: (r: RoundFigures) => number) => median(rounds.map(pick).filter(Number.isFinite));
  return {
    requestsPerS: m((r) => r.requestsPerS),
    p50Ms: m((r) => r.p50Ms),
    p99Ms: m((r) => r.p99Ms),
    spawnToFirst200Ms: m((r) => r.spawnToFirst200Ms),
    idleRssKb: m((r) => r.idleRssKb),
    loadedRssKb: m((r) => r.loadedRssKb),
    cpuUsPerRequest: m((r) => r.cpuUsPerRequest),
    logBytesPerRequest: m((r) => r.logBytesPerRequest),
    problems: rounds.reduce((sum, r) => sum + r.problems, 0),
  };
}

const fixed = (digits: number) => (n: number) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const mb = (kb: number) => fixed(1)(kb / 1024);

/** A Markdown table: readable in a terminal and the same text docs/bench.md holds. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

export function comparisonTable(service: Summary, baseline: Summary): string {
  const row = (label: string, s: number, b: number, show: (n: number) => string) => [
    label,
    show(s),
    show(b),
    fixed(2)(ratio(s, b)),
  ];
  return table(
    ['median over rounds', 'service', 'baseline', 'ratio'],
    [
      row('requests/s', service.requestsPerS, baseline.requestsPerS, fixed(0)),
      row('latency p50 (ms)', service.p50Ms, baseline.p50Ms, fixed(3)),
      row('latency p99 (ms)', service.p99Ms, baseline.p99Ms, fixed(3)),
      row('spawn to first 200 (ms)', service.spawnToFirst200Ms, baseline.spawnToFirst200Ms, fixed(1)),
      row('idle RSS (MiB)', service.idleRssKb, baseline.idleRssKb, mb),
      row('loaded RSS (MiB)', service.loadedRssKb, baseline.loadedRssKb, mb),
      row('server CPU per request (µs)', service.cpuUsPerRequest, baseline.cpuUsPerRequest, fixed(1)),
      row('stdout bytes/request', service.logBytesPerRequest, baseline.logBytesPerRequest, fixed(0)),
    ],
  );
}

export function roundsTable(service: readonly RoundFigures[], baseline: readonly RoundFigures[]): string {
  return table(
    ['round', 'service req/s', 'baseline req/s', 'service start (ms)', 'baseline start (ms)'],
    service.map((s, i) => {
      const b = baseline[i];
      return [
        String(i + 1),
        fixed(0)(s.requestsPerS),
        fixed(0)(b?.requestsPerS ?? Number.NaN),
        fixed(1)(s.spawnToFirst200Ms),
        fixed(1)(b?.spawnToFirst200Ms ?? Number.NaN),
      ];
    }),
  );
}

/** PASS/MISS lines against the targets of issue 2; a benchmark reports, it does not fail. */
export function targetLines(service: Summary, baseline: Summary): string[] {
  const throughput = ratio(service.requestsPerS, baseline.requestsPerS);
  const start = ratio(service.spawnToFirst200Ms, baseline.spawnToFirst200Ms);
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  return [
    `${verdict(throughput >= TARGETS.throughputRatio)}  throughput ${fixed(2)(throughput)} of baseline (target >= ${TARGETS.throughputRatio})`,
    `${verdict(start <= TARGETS.startRatio)}  spawn to first 200 ${fixed(2)(start)}x baseline (target <= ${TARGETS.startRatio}x)`,
  ];
}

export function agentLines(agent: AgentFigures | string): string[] {
  if (typeof agent === 'string') return [agent];
  const outcomes = Object.entries(agent.outcomes)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    table(
      ['agent (one-second schedule)', 'value'],
      [
        ['ticks observed', String(agent.ticks)],
        ['tick drift median (ms)', fixed(1)(agent.driftMedianMs)],
        ['tick drift p95 (ms)', fixed(1)(agent.driftP95Ms)],
        ['idle RSS between ticks (MiB)', mb(agent.idleRssKb)],
        ['peak RSS, VmHWM (MiB)', mb(agent.peakRssKb)],
      ],
    ),
    '',
    `Drift: ${agent.driftBasis}. Outcomes: ${outcomes || 'none'}.`,
  ];
}

export function machineLine(machine: Machine): string {
  return `${machine.date} · ${machine.nproc} CPUs · ${machine.cpuModel} · Node ${machine.node} · ${machine.os}`;
}
