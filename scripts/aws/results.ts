import { FAILED_OUTCOMES, type PollLine, parsePollLine } from '../../lib/contract.ts';
import { ConfigError } from '../../lib/errors.ts';
import { shellQuote } from './delivery.ts';
import { AwsStateError, errorName } from './errors.ts';
import { findInstances } from './instances.ts';
import type { Session } from './report.ts';
import { runCommand } from './ssm-command.ts';

/**
 * What ec2-results reads from an instance through Run Command, and the report made of it. The remote
 * script prints the output file's last lines, then a marker, then the agent's last few failure lines
 * from journald and one `counts ...` line (counted remotely: SSM returns at most 24,000 characters of
 * output, so an hour of log lines cannot come back whole).
 */
export const JOURNAL_MARKER = '--- random-number-agent journal ---';

interface ParsedResults {
  samples: { time: string; number: number }[];
  /** Output lines that are not exactly `<timestamp> <number>`: torn, joined or foreign. */
  unparsed: string[];
  /** The last failed polls in the journal. */
  failures: PollLine[];
  /** Over the last hour, as the instance counted them, and whether the file is there (absent without its count line). */
  counts?: { failed: number; coldStarts: number; skipped: number; fileFound: boolean };
}

const COUNTS = /^counts failed=(\d+) cold=(\d+) skipped=(\d+) file=(yes|no)$/;
/**
 * Exactly the line the agent writes, nothing looser: a torn line that another was appended to
 * (`2026-12-2026-12-04T14:26:46.007Z 88`) must not lend its last part a timestamp.
 */
const SAMPLE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (100|[1-9]?[0-9])$/;

export function parseResults(stdout: string): ParsedResults {
  const [fileText = '', journalText = ''] = stdout.split(JOURNAL_MARKER);
  const parsed: ParsedResults = { samples: [], unparsed: [], failures: [] };
  for (const line of fileText.split('\n')) {
    const match = SAMPLE.exec(line);
    if (match) parsed.samples.push({ time: match[1] as string, number: Number(match[2]) });
    else if (line) parsed.unparsed.push(line);
  }
  for (const line of journalText.split('\n')) {
    const [, failed, coldStarts, skipped, file] = COUNTS.exec(line.trim()) ?? [];
    if (failed) {
      const [f = 0, c = 0, s = 0] = [failed, coldStarts, skipped].map(Number);
      parsed.counts = { failed: f, coldStarts: c, skipped: s, fileFound: file === 'yes' };
    }
    const entry = parsePollLine(line);
    if (entry && FAILED_OUTCOMES.includes(entry.outcome)) parsed.failures.push(entry);
  }
  return parsed;
}

/** Count, min, max, mean and ten buckets: 0–9, 10–19, …, 80–89, 90–100. */
export function summarize(numbers: number[]) {
  if (!numbers.length) return undefined;
  const bucket = (n: number) => Math.min(9, Math.max(0, Math.floor(n / 10)));
  const histogram = Array.from({ length: 10 }, (_, b) => numbers.filter((n) => bucket(n) === b).length);
  const mean = numbers.reduce((a, b) => a + b, 0) / numbers.length;
  return { count: numbers.length, min: Math.min(...numbers), max: Math.max(...numbers), mean, histogram };
}

/** Human-readable report for one instance. */
export function formatResults(instanceId: string, parsed: ParsedResults, outputFile: string): string {
  const lines = [`== ${instanceId}`];
  const summary = summarize(parsed.samples.map((s) => s.number));
  if (parsed.counts?.fileFound === false) {
    // Not "nothing yet": the agent makes its file when it starts, so a wrong --output-file would wait forever.
    lines.push(
      `no file ${outputFile} on the instance: the agent makes it when it starts; give --output-file as the agent has it (OUTPUT_FILE in /etc/random-number-agent/agent.env)`,
    );
  } else if (!summary) {
    lines.push(
      'nothing yet: the agent has not written any number (it polls once per schedule tick; try again in a minute)',
    );
  } else {
    lines.push('last lines:', ...parsed.samples.map((s) => `  ${s.time} ${s.number}`));
    const { count, min, max, mean, histogram } = summary;
    lines.push(`count ${count}  min ${min}  max ${max}  mean ${mean.toFixed(1)}`, 'histogram:');
    const peak = Math.max(...histogram);
    histogram.forEach((n, i) => {
      const label = `${String(i * 10).padStart(2)}–${String(i === 9 ? 100 : i * 10 + 9).padEnd(3)}`;
      const bar = '#'.repeat(peak ? Math.round((n / peak) * 40) : 0);
      lines.push(`  ${label} ${String(n).padStart(4)} ${bar}`.trimEnd());
    });
  }
  const [first] = parsed.unparsed;
  if (first !== undefined) {
    const shown = JSON.stringify(first.slice(0, 100));
    lines.push(`${parsed.unparsed.length} torn or unparsable line(s), left out; the first: ${shown}`);
  }
  // Without the instance's count line (the emulator runs nothing), what came back is all there is.
  const { failed, coldStarts, skipped } = parsed.counts ?? {
    failed: parsed.failures.length,
    coldStarts: 0,
    skipped: 0,
  };
  lines.push(`failures in the last hour: ${failed}`);
  for (const f of parsed.failures.slice(-5)) lines.push(`  ${f.scheduledAt} ${f.outcome}: ${f.reason ?? ''}`);
  lines.push(`cold starts in the last hour: ${coldStarts}`);
  if (skipped) lines.push(`skipped ticks in the last hour: ${skipped} (still polling, or missed in a pause)`);
  return lines.join('\n');
}

const FAILED_GREP = `'"outcome":"(${FAILED_OUTCOMES.join('|')})"'`;

/** The remote script: last lines of the output file, then the agent's recent failures and the counts. */
export function resultsScript(options: { outputFile: string; lines: number }): string[] {
  return [
    `f=${shellQuote(options.outputFile)}`,
    `if [ -f "$f" ]; then file=yes; tail -n ${options.lines} "$f"; else file=no; fi`,
    `echo '${JOURNAL_MARKER}'`,
    'j=$(journalctl -u random-number-agent --since -1h -o cat 2>/dev/null || true)',
    `printf '%s\\n' "$j" | grep -E ${FAILED_GREP} | tail -n 5`,
    `failed=$(printf '%s\\n' "$j" | grep -cE ${FAILED_GREP})`,
    `cold=$(printf '%s\\n' "$j" | grep -c '"coldStart":true')`,
    `skipped=$(printf '%s\\n' "$j" | grep -c '"outcome":"skipped"')`,
    'echo "counts failed=$failed cold=$cold skipped=$skipped file=$file"',
  ];
}

/** Reads and prints, through SSM, the results of every running instance tagged Project=<name>. */
export async function printResults(
  { ec2, ssm, report }: Session,
  options: { name: string; lines: number; outputFile: string; delaySeconds: number },
): Promise<void> {
  const instances = await findInstances(ec2, options.name);
  const instanceIds = instances.filter((i) => i.state === 'running').map((i) => i.instanceId);
  if (!instanceIds.length) {
    throw new ConfigError(
      `no running instance tagged Project=${options.name}: run \`npm run provision-ec2 -- --service-url <url>\` first`,
    );
  }
  const comment = 'random-number agent: read results';
  const command = { comment, commands: resultsScript(options), timeoutSeconds: 60 };
  const { results } = await report.step(
    'read results',
    () =>
      runCommand(ssm, {
        command,
        target: { instanceIds },
        instanceIds,
        delaySeconds: options.delaySeconds,
      }).catch((err: unknown) => {
        if (errorName(err) !== 'InvalidInstanceId') throw err;
        throw new AwsStateError(
          `${instanceIds.join(', ')} not reachable through SSM yet (InvalidInstanceId): a new instance registers within a few minutes; if it persists, check its outbound HTTPS and its role`,
          { cause: err },
        );
      }),
    (r) => `command ${r.commandId} on ${instanceIds.join(', ')}`,
  );
  for (const { instanceId, stdout } of results)
    report.line(`\n${formatResults(instanceId, parseResults(stdout), options.outputFile)}`);
}
