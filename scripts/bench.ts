import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { runMain } from '../lib/cli.ts';
import { measureAgent } from './bench/agent.ts';
import { loadBenchConfig } from './bench/config.ts';
import { writeResults } from './bench/doc.ts';
import { describeMachine } from './bench/machine.ts';
import { pinCores } from './bench/pinning.ts';
import {
  type AgentFigures,
  agentLines,
  comparisonTable,
  machineLine,
  roundsTable,
  summarize,
  targetLines,
} from './bench/report.ts';
import { measureRound, type RoundFigures } from './bench/round.ts';
import { startServer } from './bench/server-process.ts';

const root = resolve(import.meta.dirname, '..');
const SERVICE = resolve(root, 'dist/random-number.mjs');
const AGENT = resolve(root, 'dist/ec2-agent.mjs');
const BASELINE = resolve(root, 'scripts/bench/baseline-server.mjs');
const DOC = resolve(root, 'docs/bench.md');

/**
 * `make bench`: the production bundle against a bare node:http baseline, alternating fresh processes
 * round by round so that drift in the machine hits both alike; then the agent's drift and memory.
 * Prints PASS/MISS against the targets of issue 2 and always exits 0: a benchmark, not a test.
 */
runMain('bench', async () => {
  const config = loadBenchConfig();
  if (!existsSync(SERVICE)) throw new Error(`${SERVICE} is missing: run \`make build\` first`);
  const machine = describeMachine();
  const pinning = await pinCores();
  const say = (line = '') => process.stdout.write(`${line}\n`);

  say(`machine: ${machineLine(machine)}`);
  say(`pinning: ${pinning.note}`);
  say(
    `load: autocannon on 127.0.0.1, ${config.connections} keep-alive connections, GET /, ` +
      `${config.warmupS} s warm-up + ${config.durationS} s measured, ${config.rounds} rounds alternating service/baseline`,
  );
  say(
    'service: dist/random-number.mjs, default configuration (LOG_LEVEL=info, a log line per request), stdout on a pipe drained by the bench',
  );
  say('baseline: scripts/bench/baseline-server.mjs, bare node:http, no logging');
  say();

  const service: RoundFigures[] = [];
  const baseline: RoundFigures[] = [];
  const options = { ...config, prefix: pinning.prefix };
  for (let round = 1; round <= config.rounds; round++) {
    const s = await measureRound({ name: 'service', file: SERVICE }, options);
    service.push(s);
    const b = await measureRound({ name: 'baseline', file: BASELINE }, options);
    baseline.push(b);
    say(
      `round ${round}/${config.rounds}: service ${s.requestsPerS.toFixed(0)} req/s, start ${s.spawnToFirst200Ms.toFixed(1)} ms; ` +
        `baseline ${b.requestsPerS.toFixed(0)} req/s, start ${b.spawnToFirst200Ms.toFixed(1)} ms`,
    );
  }
  const s = summarize(service);
  const b = summarize(baseline);
  const lostShutdownLines = service.filter((r) => !r.tail.includes('shutdown complete')).length;

  let agent: AgentFigures | string;
  if (config.agentTicks === 0) agent = 'agent: skipped (BENCH_AGENT_TICKS=0)';
  else if (!existsSync(AGENT)) agent = 'agent bundle not built: skipped';
  else {
    say(`agent: ${config.agentTicks} ticks of a one-second schedule against a service process...`);
    const target = await startServer({ name: 'service for the agent', file: SERVICE }, pinning.prefix);
    try {
      agent = await measureAgent({ bundle: AGENT, serviceUrl: target.url, ticks: config.agentTicks });
    } catch (err) {
      // The service figures above are still worth printing; say what went wrong with the agent.
      agent = `agent: measurement failed: ${(err as Error).message}`;
    } finally {
      await target.stop();
    }
  }

  const notes = [
    ...(s.problems + b.problems > 0
      ? [
          `WARNING: ${s.problems} service / ${b.problems} baseline requests failed (errors, timeouts, non-2xx)`,
        ]
      : []),
    `shutdown: 'shutdown complete' line present in ${config.rounds - lostShutdownLines} of ${config.rounds} service runs after SIGTERM under a drained pipe`,
  ];
  const results = [
    `Measured ${machineLine(machine)}.`,
    '',
    `Pinning: ${pinning.note}. Load: autocannon, ${config.connections} connections, ${config.warmupS} s warm-up + ${config.durationS} s per measurement, ${config.rounds} rounds alternating service and baseline (fresh processes each round); figures are medians over rounds.`,
    '',
    comparisonTable(s, b),
    '',
    ...targetLines(s, b).map((l) => `    ${l}`),
    '',
    roundsTable(service, baseline),
    '',
    ...agentLines(agent),
    '',
    ...notes,
  ].join('\n');

  say();
  say(results);
  if (config.write) {
    await writeResults(DOC, results);
    say();
    say(`wrote the results into ${DOC}`);
  }
});
