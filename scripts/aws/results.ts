import { FAILED_OUTCOMES, type PollLine, parsePollLine } from '../../lib/contract.ts';
import { shellQuote } from './delivery.ts';

/**
 * Parsing and summarising what ec2-results reads from an instance: pure functions, no AWS.
 * The remote script prints the output file's last lines, then a marker, then the agent's last few
 * failure lines from journald and one `counts ...` line (counted remotely: SSM returns at most 24,000
 * characters of output, so an hour of log lines cannot come back whole).
 */
export const JOURNAL_MARKER = '--- random-number-agent journal ---';

export interface Sample {
  time: string;
  number: number;
}

export interface ParsedResults {
  samples: Sample[];
  /** Output lines that did not parse as `<timestamp> <number>`. */
  unparsed: string[];
  failures: PollLine[];
  coldStarts: PollLine[];
  /** Ticks the agent skipped because the previous poll was still running. */
  skipped: number;
  /** Counts over the last hour as the instance computed them, when it sent them. */
  counts?: { failed: number; coldStarts: number; skipped: number };
}

export interface Summary {
  count: number;
  min: number;
  max: number;
  mean: number;
  /** Ten buckets: 0–9, 10–19, …, 80–89, 90–100. */
  histogram: number[];
}

const COUNTS = /^counts failed=(\d+) cold=(\d+) skipped=(\d+)$/;

const LINE = /^(\d{4}-\d{2}-\d{2}T\S+)\s+(-?\d+)$/;

export function parseResults(stdout: string): ParsedResults {
  const [fileText = '', journalText = ''] = stdout.split(JOURNAL_MARKER);
  const samples: Sample[] = [];
  const unparsed: string[] = [];
  for (const raw of fileText.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const match = LINE.exec(line);
    if (match) samples.push({ time: match[1] as string, number: Number(match[2]) });
    else unparsed.push(line);
  }
  const failures: PollLine[] = [];
  const coldStarts: PollLine[] = [];
  let skipped = 0;
  let counts: ParsedResults['counts'];
  for (const raw of journalText.split('\n')) {
    const countLine = COUNTS.exec(raw.trim());
    if (countLine) {
      counts = {
        failed: Number(countLine[1]),
        coldStarts: Number(countLine[2]),
        skipped: Number(countLine[3]),
      };
      continue;
    }
    const entry = parsePollLine(raw);
    if (!entry) continue;
    if (FAILED_OUTCOMES.includes(entry.outcome)) failures.push(entry);
    if (entry.outcome === 'skipped') skipped += 1;
    if (entry.coldStart === true) coldStarts.push(entry);
  }
  return { samples, unparsed, failures, coldStarts, skipped, ...(counts ? { counts } : {}) };
}

export function summarize(numbers: number[]): Summary | undefined {
  if (!numbers.length) return undefined;
  const histogram = Array.from({ length: 10 }, () => 0);
  let sum = 0;
  for (const n of numbers) {
    sum += n;
    const bucket = Math.min(9, Math.max(0, Math.floor(n / 10)));
    histogram[bucket] = (histogram[bucket] ?? 0) + 1;
  }
  return {
    count: numbers.length,
    min: Math.min(...numbers),
    max: Math.max(...numbers),
    mean: sum / numbers.length,
    histogram,
  };
}

function bucketLabel(index: number): string {
  const low = index * 10;
  const high = index === 9 ? 100 : low + 9;
  return `${String(low).padStart(2)}–${String(high).padEnd(3)}`;
}

/** Human-readable report for one instance. */
export function formatResults(instanceId: string, parsed: ParsedResults, width = 40): string {
  const lines = [`== ${instanceId}`];
  const summary = summarize(parsed.samples.map((s) => s.number));
  if (!summary) {
    lines.push(
      'nothing yet: the agent has not written any number (it polls once per schedule tick; try again in a minute)',
    );
  } else {
    lines.push('last lines:');
    for (const s of parsed.samples) lines.push(`  ${s.time} ${s.number}`);
    lines.push(
      `count ${summary.count}  min ${summary.min}  max ${summary.max}  mean ${summary.mean.toFixed(1)}`,
      'histogram:',
    );
    const peak = Math.max(...summary.histogram);
    summary.histogram.forEach((n, i) => {
      const bar = '#'.repeat(peak ? Math.round((n / peak) * width) : 0);
      lines.push(`  ${bucketLabel(i)} ${String(n).padStart(4)} ${bar}`.trimEnd());
    });
  }
  if (parsed.unparsed.length)
    lines.push(`${parsed.unparsed.length} line(s) not in "<timestamp> <number>" form`);
  const counts = parsed.counts ?? {
    failed: parsed.failures.length,
    coldStarts: parsed.coldStarts.length,
    skipped: parsed.skipped,
  };
  lines.push(`failures in the last hour: ${counts.failed}`);
  for (const f of parsed.failures.slice(-5)) {
    lines.push(`  ${f.scheduledAt} ${f.outcome}: ${f.reason ?? ''}`);
  }
  lines.push(`cold starts in the last hour: ${counts.coldStarts}`);
  if (counts.skipped)
    lines.push(`skipped ticks in the last hour: ${counts.skipped} (a poll was still running)`);
  return lines.join('\n');
}

const FAILED_GREP = `'"outcome":"(${FAILED_OUTCOMES.join('|')})"'`;

/** The remote script: last lines of the output file, then the agent's recent failures and the counts. */
export function resultsScript(options: { outputFile: string; lines: number }): string[] {
  return [
    `f=${shellQuote(options.outputFile)}`,
    `if [ -f "$f" ]; then tail -n ${options.lines} "$f"; fi`,
    `echo '${JOURNAL_MARKER}'`,
    'j=$(journalctl -u random-number-agent --since -1h -o cat 2>/dev/null || true)',
    `printf '%s\\n' "$j" | grep -E ${FAILED_GREP} | tail -n 5`,
    `failed=$(printf '%s\\n' "$j" | grep -cE ${FAILED_GREP})`,
    `cold=$(printf '%s\\n' "$j" | grep -c '"coldStart":true')`,
    `skipped=$(printf '%s\\n' "$j" | grep -c '"outcome":"skipped"')`,
    'echo "counts failed=$failed cold=$cold skipped=$skipped"',
  ];
}
