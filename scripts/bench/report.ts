import type { Machine } from './machine.ts';
import type { RoundFigures } from './round.ts';
import { median, ratio } from './stats.ts';

/**
 * The speed goals, as multiples of bare node:http in the same run. Start-up and memory (the service's
 * and the agent's) are reported beside the peers, not judged.
 */
export const TARGETS = {
  /** Service, default configuration (a request line each): server CPU per request, and below Fastify. */
  cpuRatio: 1.6,
  /** Service with LOG_LEVEL=warn (no request lines). */
  cpuRatioQuiet: 1.3,
} as const;

/** Medians over rounds: a round's figures without its per-run details. */
export type Summary = Omit<RoundFigures, 'tail' | 'exitCode'>;

/** One server's medians, with how tables name it. */
export interface PeerSummary {
  name: string;
  label: string;
  summary: Summary;
}

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
const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : 'n/a');

/** A Markdown table: readable in a terminal and the same text docs/bench.md holds. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Ratios of one server to bare node:http, each the median of per-round ratios. */
export interface Ratios {
  cpu: number;
  throughput: number;
  start: number;
  idleRss: number;
  loadedRss: number;
}

export function ratiosOf(peer: readonly RoundFigures[], bare: readonly RoundFigures[]): Ratios {
  const per = (pick: (r: RoundFigures) => number) =>
    median(peer.map((r, i) => ratio(pick(r), bare[i] ? pick(bare[i]) : Number.NaN)).filter(Number.isFinite));
  return {
    cpu: per((r) => r.cpuUsPerRequest),
    throughput: per((r) => r.requestsPerS),
    start: per((r) => r.spawnToFirst200Ms),
    idleRss: per((r) => r.idleRssKb),
    loadedRss: per((r) => r.loadedRssKb),
  };
}

/** The table of the README and docs/bench.md: one row per server, medians and ratios to bare. */
export function comparisonTable(rows: readonly (PeerSummary & { ratios: Ratios })[]): string {
  return table(
    [
      'server',
      'CPU µs/req',
      '× bare',
      'req/s',
      '× bare',
      'p50 ms',
      'p99 ms',
      'start ms',
      '× bare',
      'idle RSS MiB',
      '× bare',
      'loaded RSS MiB',
      '× bare',
      'stdout B/req',
    ],
    rows.map(({ label, summary: s, ratios: r }) => [
      label,
      fixed(1)(s.cpuUsPerRequest),
      times(r.cpu),
      fixed(0)(s.requestsPerS),
      times(r.throughput),
      fixed(3)(s.p50Ms),
      fixed(3)(s.p99Ms),
      fixed(1)(s.spawnToFirst200Ms),
      times(r.start),
      mb(s.idleRssKb),
      times(r.idleRss),
      mb(s.loadedRssKb),
      times(r.loadedRss),
      fixed(0)(s.logBytesPerRequest),
    ]),
  );
}

/** Server CPU per request, round by round: how much the figures moved during the run. */
export function roundsTable(
  names: readonly string[],
  rounds: Record<string, readonly RoundFigures[]>,
): string {
  const count = Math.max(...names.map((n) => rounds[n]?.length ?? 0));
  return table(
    ['round', ...names.map((n) => `${n} CPU µs/req`)],
    Array.from({ length: count }, (_, i) => [
      String(i + 1),
      ...names.map((n) => fixed(1)(rounds[n]?.[i]?.cpuUsPerRequest ?? Number.NaN)),
    ]),
  );
}

const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

/**
 * In how many rounds `a` took less CPU per request than `b`, of the rounds that measured both: a
 * median can sit below another's while the rounds split almost evenly.
 */
export function roundsAhead(a: readonly RoundFigures[], b: readonly RoundFigures[]): [number, number] {
  const pairs = a
    .map((r, i) => [r.cpuUsPerRequest, b[i]?.cpuUsPerRequest ?? Number.NaN] as const)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  return [pairs.filter(([x, y]) => x < y).length, pairs.length];
}

/**
 * PASS/MISS against TARGETS; a benchmark reports, it does not fail. Absent peers are left out.
 * `aheadOfFastify` (roundsAhead of the service and Fastify) is shown beside the comparison of medians.
 */
export function targetLines(
  ratios: Partial<Record<'service' | 'service-warn' | 'fastify' | 'hono' | 'hono-request-id', Ratios>>,
  aheadOfFastify?: [number, number],
): string[] {
  const lines: string[] = [];
  const { service, fastify, hono } = ratios;
  const withId = ratios['hono-request-id'];
  const quiet = ratios['service-warn'];
  if (service) {
    const ok = service.cpu <= TARGETS.cpuRatio && (!fastify || service.cpu < fastify.cpu);
    const rounds = aheadOfFastify
      ? `; ahead of it in ${aheadOfFastify[0]} of ${aheadOfFastify[1]} rounds`
      : '';
    const peer = fastify ? ` and below Fastify's ${times(fastify.cpu)}${rounds}` : '';
    lines.push(
      `${verdict(ok)}  server CPU per request, default logging: ${times(service.cpu)} bare (target <= ${TARGETS.cpuRatio}×${peer})`,
    );
  }
  if (quiet) {
    // The floors of the chosen parts, beside the goal they bound: no middleware of ours goes below them.
    const floor = [
      hono ? `Hono on node-server alone ${times(hono.cpu)}` : '',
      withId ? `with hono/request-id ${times(withId.cpu)}` : '',
    ].filter(Boolean);
    const floors = floor.length ? `; ${floor.join(', ')}` : '';
    lines.push(
      `${verdict(quiet.cpu <= TARGETS.cpuRatioQuiet)}  server CPU per request, LOG_LEVEL=warn: ${times(quiet.cpu)} bare (target <= ${TARGETS.cpuRatioQuiet}×${floors})`,
    );
  }
  return lines;
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
