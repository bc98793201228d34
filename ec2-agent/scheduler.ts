import cronParser from 'cron-parser';
import schedule from 'node-schedule';
import { logPoll } from '../lib/contract.ts';
import type { Logger } from '../lib/logger.ts';
import { type createPoller, PollError } from './poll.ts';

export interface SchedulerOptions {
  /** A cron expression (5 fields, or 6 with seconds), already validated by config. */
  schedule: string;
  poll: ReturnType<typeof createPoller>;
  sink: { write(at: Date, number: number): Promise<void> };
  /** The root logger: `poll` lines go out with `module: "poll"`, the scheduler's own with "scheduler". */
  logger: Logger;
  now?: () => number;
  scheduleJob?: typeof schedule.scheduleJob;
}

/** The share of the gap to the next tick that a tick may use, leaving room to write and log. */
const BUDGET_SHARE = 0.9;

/**
 * Polls on a cron schedule, never two at once: node-schedule fires regardless of whether the last
 * tick ended, so a tick that finds one still running is skipped (and logged), not queued. Every tick
 * logs exactly one line (`msg: "poll"`) with scheduledAt, driftMs, outcome, number, latencyMs, attempts
 * and coldStart, and never throws: an outage, a 5xx or garbage is a logged failure and the next tick
 * tries again.
 */
export function createScheduler(options: SchedulerOptions) {
  const { poll, sink, now = Date.now, scheduleJob = schedule.scheduleJob } = options;
  const logger = options.logger.child({ module: 'scheduler' });
  const pollLogger = options.logger.child({ module: 'poll' });
  let running: { done: Promise<void>; controller: AbortController; scheduledAt: Date } | undefined;
  let job: schedule.Job | undefined;
  let stopped = false;

  /** Epoch ms by which the tick's work must be over: before the next tick is due. */
  function deadlineAfter(scheduledAt: Date): number {
    const next = cronParser.parseExpression(options.schedule, { currentDate: scheduledAt }).next().getTime();
    const from = Math.max(scheduledAt.getTime(), now());
    return from + Math.max(0, next - from) * BUDGET_SHARE;
  }

  /** One tick, start to end: ask, write the number if there is one, and log the tick's `poll` line. */
  async function tick(scheduledAt: Date, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    // How late the tick began against its cron time: what `make bench` reports as drift.
    const base = { scheduledAt: scheduledAt.toISOString(), driftMs: now() - scheduledAt.getTime() };
    const latency = () => Math.round(performance.now() - started);
    const result = await poll({ deadline: deadlineAfter(scheduledAt), signal }).catch((err: unknown) =>
      err instanceof PollError ? err : new PollError(`unexpected: ${(err as Error).message}`),
    );
    if (result instanceof PollError) {
      const line = { number: null, latencyMs: latency(), attempts: result.attempts, coldStart: null };
      logPoll(pollLogger, { ...base, ...line, reason: result.reason, outcome: 'failed' });
      return;
    }
    const { number, attempts, coldStart } = result;
    const line = { ...base, number, latencyMs: latency(), attempts, coldStart: coldStart ?? null };
    try {
      // Once a number has arrived it is written, shutdown or not: the abort only stops waiting.
      await sink.write(new Date(), number);
      logPoll(pollLogger, { ...line, outcome: 'ok' });
    } catch (err) {
      // The number is in this log line, so it is not lost even when the file cannot take it.
      const reason = `cannot write the numbers file: ${(err as Error).message}`;
      logPoll(pollLogger, { ...line, outcome: 'write_failed', reason });
    }
  }

  // node-schedule passes the planned time of the tick.
  function fire(scheduledAt: Date) {
    if (stopped) return;
    if (running) {
      // The same `poll` line as every other tick, so one query over the log counts every outcome.
      logPoll(logger, {
        scheduledAt: scheduledAt.toISOString(),
        driftMs: now() - scheduledAt.getTime(),
        outcome: 'skipped',
        number: null,
        latencyMs: null,
        attempts: 0,
        coldStart: null,
        reason: 'the previous poll is still running',
        runningSince: running.scheduledAt.toISOString(),
      });
      return;
    }
    const controller = new AbortController();
    const done = tick(scheduledAt, controller.signal)
      .catch((err: unknown) => logger.error({ err }, 'tick failed unexpectedly'))
      .finally(() => {
        running = undefined;
      });
    running = { done, controller, scheduledAt };
  }

  return {
    start(): void {
      job = scheduleJob(options.schedule, fire);
      // config validated the expression with the same parser, so this only guards a mismatch.
      if (!job) throw new Error(`node-schedule refused the schedule ${JSON.stringify(options.schedule)}`);
    },
    /** The next planned tick, ISO-8601, for the start-up log line (node-schedule's CronDate, or none). */
    nextTick: () => job?.nextInvocation()?.toISOString(),
    busy: () => running !== undefined,
    /**
     * No new ticks; waits for a running one up to `graceMs`, then aborts it (it writes nothing once
     * aborted) and waits for it to notice.
     */
    async stop(graceMs: number): Promise<'idle' | 'finished' | 'aborted'> {
      stopped = true;
      job?.cancel();
      const current = running;
      if (!current) return 'idle';
      const timer = setTimeout(() => current.controller.abort(new Error('shutdown')), graceMs);
      await current.done;
      clearTimeout(timer);
      return current.controller.signal.aborted ? 'aborted' : 'finished';
    },
  };
}
