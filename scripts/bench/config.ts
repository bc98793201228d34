import * as z from 'zod/mini';
import { intVar, parseEnv } from '../../lib/env.ts';
import { ConfigError } from '../../lib/errors.ts';
import { PEER_NAMES } from './peers.ts';

export interface BenchConfig {
  /** Seconds of measured load per server per round. */
  durationS: number;
  rounds: number;
  /** Seconds of unmeasured load before each measurement (JIT, connection set-up). */
  warmupS: number;
  connections: number;
  /** Which servers to run (names from peers.ts); `bare` is always among them, as every ratio needs it. */
  peers: string[];
  /** Agent ticks to observe on a one-second schedule; 0 skips the agent part. */
  agentTicks: number;
  /** Rewrite the generated part of docs/bench.md with this run's figures. */
  write: boolean;
  /** The node binary the servers and the agent run on (`make bench`: the Node 22 production runs). */
  node: string;
}

// Defaults keep the whole run near four minutes on two cores:
// 6 servers × 5 rounds × (1 + 4 s) + start/stop + ~22 s of agent.
const schema = z.object({
  BENCH_DURATION: z._default(intVar(1, 600), 4),
  BENCH_ROUNDS: z._default(intVar(1, 50), 5),
  BENCH_WARMUP: z._default(intVar(0, 60), 1),
  BENCH_CONNECTIONS: z._default(intVar(1, 1000), 10),
  BENCH_PEERS: z._default(z.string(), PEER_NAMES.join(',')),
  BENCH_AGENT_TICKS: z._default(intVar(0, 600), 20),
  BENCH_WRITE: z._default(z.enum(['0', '1']), '0'),
  BENCH_NODE: z._default(z.string().check(z.minLength(1)), process.execPath),
});

/** BENCH_* from the environment; `--write` on the command line is the same as BENCH_WRITE=1. */
export function loadBenchConfig(
  env: Record<string, string | undefined> = process.env,
  argv: readonly string[] = process.argv.slice(2),
): BenchConfig {
  const parsed = parseEnv(schema, env);
  const asked = parsed.BENCH_PEERS.split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const unknown = asked.filter((p) => !PEER_NAMES.includes(p));
  if (unknown.length > 0) {
    throw new ConfigError(
      `invalid configuration: BENCH_PEERS names unknown servers (${unknown.join(', ')}); choose from ${PEER_NAMES.join(', ')}`,
    );
  }
  return {
    durationS: parsed.BENCH_DURATION,
    rounds: parsed.BENCH_ROUNDS,
    warmupS: parsed.BENCH_WARMUP,
    connections: parsed.BENCH_CONNECTIONS,
    peers: PEER_NAMES.filter((p) => p === 'bare' || asked.includes(p)),
    agentTicks: parsed.BENCH_AGENT_TICKS,
    write: parsed.BENCH_WRITE === '1' || argv.includes('--write'),
    node: parsed.BENCH_NODE,
  };
}
