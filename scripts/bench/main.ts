import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { runMain } from '../../lib/cli.ts';
import { measureAgent } from './agent.ts';
import { stopChildrenOnSignal } from './children.ts';
import { loadBenchConfig } from './config.ts';
import { writeResults } from './doc.ts';
import { describeMachine } from './machine.ts';
import { PEERS, SERVICE_BUNDLE } from './peers.ts';
import { pinCores } from './pinning.ts';
import {
  type AgentFigures,
  agentLines,
  comparisonTable,
  machineLine,
  type Ratios,
  ratiosOf,
  roundsAhead,
  roundsTable,
  summarize,
  targetLines,
} from './report.ts';
import { measureRound, type RoundFigures } from './round.ts';
import { startServer } from './server-process.ts';

const root = resolve(import.meta.dirname, '../..');
const AGENT = resolve(root, 'dist/ec2-agent.mjs');
const DOC = resolve(root, 'docs/bench.md');

/**
 * `make bench`: the production bundle against bare node:http (the limit) and Fastify 5 with its
 * default request logging (what a user would pick instead), each a real process pinned to the same
 * core, in rotating order round by round so that drift in a shared machine hits all alike; then the
 * agent's drift and memory. Prints PASS/MISS against the CPU goals (report.ts) and always exits 0: a
 * benchmark, not a test.
 */
runMain('bench', async () => {
  stopChildrenOnSignal();
  const config = loadBenchConfig();
  if (!existsSync(SERVICE_BUNDLE)) throw new Error(`${SERVICE_BUNDLE} is missing: run \`make build\` first`);
  const peers = PEERS.filter((p) => config.peers.includes(p.name));
  const machine = describeMachine(config.node);
  const pinning = await pinCores();
  const say = (line = '') => process.stdout.write(`${line}\n`);

  const load =
    `autocannon in a process of its own on 127.0.0.1, ${config.connections} keep-alive connections, GET /, ` +
    `${config.warmupS} s warm-up + ${config.durationS} s measured per server, ${config.rounds} rounds, ` +
    'servers in rotating order, a fresh process each';
  say(`machine: ${machineLine(machine)}`);
  say(`pinning: ${pinning.note}`);
  say(`load: ${load}`);
  say(
    `servers: ${peers.map((p) => p.name).join(', ')}; stdout of each on a pipe drained by the bench process`,
  );
  say();

  const rounds: Record<string, RoundFigures[]> = Object.fromEntries(peers.map((p) => [p.name, []]));
  const options = { ...config, prefix: pinning.prefix };
  for (let round = 0; round < config.rounds; round++) {
    const order = [...peers.slice(round % peers.length), ...peers.slice(0, round % peers.length)];
    const line: string[] = [];
    for (const peer of order) {
      const figures = await measureRound(peer, options);
      rounds[peer.name]?.push(figures);
      line.push(
        `${peer.name} ${figures.cpuUsPerRequest.toFixed(1)} µs/req ${figures.requestsPerS.toFixed(0)} req/s`,
      );
    }
    say(`round ${round + 1}/${config.rounds}: ${line.join('; ')}`);
  }
  const bare = rounds.bare ?? [];
  const rows = peers.map((p) => ({
    name: p.name,
    label: p.label,
    summary: summarize(rounds[p.name] ?? []),
    ratios: ratiosOf(rounds[p.name] ?? [], bare),
  }));
  const ratios = Object.fromEntries(rows.map((r) => [r.name, r.ratios])) as Record<string, Ratios>;
  const service = rounds.service ?? [];
  const lostShutdownLines = service.filter((r) => !r.tail.includes('shutdown complete')).length;
  const problems = rows.filter((r) => r.summary.problems > 0);

  let agent: AgentFigures | string;
  if (config.agentTicks === 0) agent = 'agent: skipped (BENCH_AGENT_TICKS=0)';
  else if (!existsSync(AGENT)) agent = 'agent bundle not built: skipped';
  else {
    say(`agent: ${config.agentTicks} ticks of a one-second schedule against a service process...`);
    const target = await startServer(
      { name: 'service for the agent', file: SERVICE_BUNDLE },
      pinning.prefix,
      config.node,
    );
    try {
      agent = await measureAgent({
        bundle: AGENT,
        serviceUrl: target.url,
        ticks: config.agentTicks,
        node: config.node,
      });
    } catch (err) {
      // The service figures above are still worth printing; say what went wrong with the agent.
      agent = `agent: measurement failed: ${(err as Error).message}`;
    } finally {
      await target.stop();
    }
  }

  const notes = [
    ...problems.map(
      (r) => `WARNING: ${r.summary.problems} requests to ${r.name} failed (errors, timeouts, non-2xx)`,
    ),
    ...(service.length > 0
      ? [
          `shutdown: 'shutdown complete' line present in ${service.length - lostShutdownLines} of ${service.length} default-configuration service runs after SIGTERM under a drained pipe`,
        ]
      : []),
  ];
  const results = [
    `Measured ${machineLine(machine)}.`,
    '',
    `Pinning: ${pinning.note}. Load: ${load}. Figures are medians over rounds; each ratio is the median of the per-round ratios to bare node:http.`,
    '',
    comparisonTable(rows),
    '',
    ...targetLines(ratios, roundsAhead(service, rounds.fastify ?? [])).map((l) => `    ${l}`),
    '',
    roundsTable(
      peers.map((p) => p.name),
      rounds,
    ),
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
