import * as z from 'zod/mini';
import { intVar, parseEnv } from '../../lib/env.ts';

export interface BenchConfig {
  /** Seconds of measured load per server per round. */
  durationS: number;
  rounds: number;
  /** Seconds of unmeasured load before each measurement (JIT, connection set-up). */
  warmupS: number;
  connections: number;
  /** Agent ticks to observe on a one-second schedule; 0 skips the agent part. */
  agentTicks: number;
  /** Rewrite the generated part of docs/bench.md with this run's figures. */
  write: boolean;
}

// Defaults keep the whole run near 90 s on two cores: 2 servers × 5 rounds × (1 + 5 s) + ~22 s of agent.
const schema = z.object({
  BENCH_DURATION: z._default(intVar(1, 600), 5),
  BENCH_ROUNDS: z._default(intVar(1, 50), 5),
  BENCH_WARMUP: z._default(intVar(0, 60), 1),
  BENCH_CONNECTIONS: z._default(intVar(1, 1000), 10),
  BENCH_AGENT_TICKS: z._default(intVar(0, 600), 20),
  BENCH_WRITE: z._default(z.enum(['0', '1']), '0'),
});

/** BENCH_* from the environment; `--write` on the command line is the same as BENCH_WRITE=1. */
export function loadBenchConfig(
  env: Record<string, string | undefined> = process.env,
  argv: readonly string[] = process.argv.slice(2),
): BenchConfig {
  const parsed = parseEnv(schema, env);
  return {
    durationS: parsed.BENCH_DURATION,
    rounds: parsed.BENCH_ROUNDS,
    warmupS: parsed.BENCH_WARMUP,
    connections: parsed.BENCH_CONNECTIONS,
    agentTicks: parsed.BENCH_AGENT_TICKS,
    write: parsed.BENCH_WRITE === '1' || argv.includes('--write'),
  };
}
