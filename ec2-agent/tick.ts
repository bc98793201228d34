import { logPoll } from '../lib/contract.ts';
import type { Logger } from '../lib/logger.ts';
import { PollError, type PollRequest, type PollResult } from './poll.ts';
import type { Tick } from './scheduler.ts';

export interface TickOptions {
  poll: (request: PollRequest) => Promise<PollResult>;
  sink: { write(at: Date, number: number): Promise<void> };
  logger: Logger;
}

/**
 * One scheduled poll, start to end: ask, write the number if there is one, and log exactly one line
 * (`msg: "poll"`) with scheduledAt, driftMs, outcome, number, latencyMs, attempts and coldStart. Never throws:
 * an outage, a 5xx or garbage is a logged failure and the next tick tries again.
 */
export function createTick({ poll, sink, logger }: TickOptions) {
  return async function tick({ scheduledAt, deadline, signal }: Tick): Promise<void> {
    const started = performance.now();
    // How late the tick began against its cron time: what `make bench` reports as drift.
    const base = { scheduledAt: scheduledAt.toISOString(), driftMs: Date.now() - scheduledAt.getTime() };
    const latency = () => Math.round(performance.now() - started);
    let result: PollResult;
    try {
      result = await poll({ deadline, signal });
    } catch (err) {
      const { reason, attempts } =
        err instanceof PollError ? err : new PollError(`unexpected: ${(err as Error).message}`);
      const line = { number: null, latencyMs: latency(), attempts, coldStart: null, reason };
      logPoll(logger, { ...base, ...line, outcome: 'failed' });
      return;
    }
    const { number, attempts, coldStart } = result;
    const line = { ...base, number, latencyMs: latency(), attempts, coldStart: coldStart ?? null };
    try {
      // Once a number has arrived it is written, shutdown or not: the abort only stops waiting.
      await sink.write(new Date(), number);
    } catch (err) {
      // The number is in this log line, so it is not lost even when the file cannot take it.
      const reason = `cannot write the numbers file: ${(err as Error).message}`;
      logPoll(logger, { ...line, outcome: 'write_failed', reason });
      return;
    }
    logPoll(logger, { ...line, outcome: 'ok' });
  };
}
