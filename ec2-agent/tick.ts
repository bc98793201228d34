import { logPoll } from '../lib/contract.ts';
import type { Logger } from '../lib/logger.ts';
import { PollError, type PollRequest, type PollResult } from './poll.ts';
import type { Tick } from './scheduler.ts';
import type { FileSink } from './sink.ts';

export interface TickOptions {
  poll: (request: PollRequest) => Promise<PollResult>;
  sink: Pick<FileSink, 'write'>;
  logger: Logger;
  clock?: () => Date;
  now?: () => number;
}

/**
 * One scheduled poll, start to end: ask, write the number if there is one, and log exactly one line
 * (`msg: "poll"`) with scheduledAt, driftMs, outcome, number, latencyMs, attempts and coldStart. Never throws:
 * an outage, a 5xx or garbage is a logged failure and the next tick tries again.
 */
export function createTick(options: TickOptions) {
  const { poll, sink, logger, clock = () => new Date(), now = performance.now.bind(performance) } = options;
  return async function tick({ scheduledAt, deadline, signal }: Tick): Promise<void> {
    const started = now();
    // How late the tick began against its cron time: what `make bench` reports as drift.
    const base = {
      scheduledAt: scheduledAt.toISOString(),
      driftMs: clock().getTime() - scheduledAt.getTime(),
    };
    const latency = () => Math.round(now() - started);
    let result: PollResult;
    try {
      result = await poll({ deadline, signal });
    } catch (err) {
      const attempts = err instanceof PollError ? err.attempts : 1;
      const reason = err instanceof PollError ? err.reason : `unexpected: ${(err as Error).message}`;
      logPoll(logger, {
        ...base,
        outcome: 'failed',
        number: null,
        latencyMs: latency(),
        attempts,
        coldStart: null,
        reason,
      });
      return;
    }
    const { number, attempts, coldStart } = result;
    const line = { ...base, number, latencyMs: latency(), attempts, coldStart: coldStart ?? null };
    try {
      // Once a number has arrived it is written, shutdown or not: the abort only stops waiting.
      await sink.write(clock(), number);
    } catch (err) {
      // The number is in this log line, so it is not lost even when the file cannot take it.
      const reason = `cannot write the numbers file: ${(err as Error).message}`;
      logPoll(logger, { ...line, outcome: 'write_failed', reason });
      return;
    }
    logPoll(logger, { ...line, outcome: 'ok' });
  };
}
