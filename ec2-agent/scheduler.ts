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
  /** How many numbers may wait in memory for the file; past it the oldest are dropped (and logged). */
  backlogLimit?: number;
  now?: () => number;
  scheduleJob?: typeof schedule.scheduleJob;
}

/** A day of the default once-a-minute schedule: a full disk has that long to be freed. */
export const BACKLOG_LIMIT = 1440;

/** A number the file has not taken yet, with the time it arrived. */
type Waiting = { at: Date; number: number };

/** The share of the gap to the next tick that a tick may use, leaving room to write and log. */
const BUDGET_SHARE = 0.9;

/**
 * Polls on a cron schedule, never two at once: node-schedule fires regardless of whether the last
 * tick ended, so a tick that finds one still running is skipped (and logged), not queued; so is a
 * tick fired after its window had gone (node-schedule catching up after a pause). Every tick
 * logs exactly one line (`msg: "poll"`) with scheduledAt, driftMs, outcome, number, latencyMs, attempts
 * coldStart and backlog, and never throws: an outage, a 5xx or garbage is a logged failure and the
 * next tick tries again. A number the file cannot take (a full disk) waits in memory with its own
 * timestamp; every tick writes the waiting ones, oldest first, before a new one, so the file stays in
 * time order.
 */
export function createScheduler(options: SchedulerOptions) {
  const { poll, sink, now = Date.now, scheduleJob = schedule.scheduleJob } = options;
  const backlogLimit = options.backlogLimit ?? BACKLOG_LIMIT;
  const logger = options.logger.child({ module: 'scheduler' });
  const pollLogger = options.logger.child({ module: 'poll' });
  let running: { done: Promise<void>; controller: AbortController; scheduledAt: Date } | undefined;
  let job: schedule.Job | undefined;
  let stopped = false;
  const backlog: Waiting[] = [];
  let dropped = 0;

  /** Writes the waiting numbers, oldest first; stops at the first the file refuses and returns why. */
  async function flush(): Promise<Error | undefined> {
    for (let next = backlog[0]; next; next = backlog[0]) {
      const error = await sink.write(next.at, next.number).catch((err: Error) => err);
      if (error) return error;
      backlog.shift();
    }
  }

  /** A number that will never reach the file: its own log line, so it is still on record. */
  function drop({ at, number }: Waiting, reason: string) {
    dropped += 1;
    logger.error({ arrivedAt: at.toISOString(), number, dropped, reason }, 'number dropped');
  }

  /** Epoch ms by which the tick's work must be over: before the next tick is due. */
  function deadlineAfter(scheduledAt: Date): number {
    const next = cronParser.parseExpression(options.schedule, { currentDate: scheduledAt }).next().getTime();
    const from = Math.max(scheduledAt.getTime(), now());
    return from + Math.max(0, next - from) * BUDGET_SHARE;
  }

  /** One tick, start to end: ask, write the number if there is one, and log the tick's `poll` line. */
  async function tick(scheduledAt: Date, deadline: number, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    // How late the tick began against its cron time: what `make bench` reports as drift.
    const base = { scheduledAt: scheduledAt.toISOString(), driftMs: now() - scheduledAt.getTime() };
    const latency = () => Math.round(performance.now() - started);
    const result = await poll({ deadline, signal }).catch((err: unknown) =>
      err instanceof PollError ? err : new PollError(`unexpected: ${(err as Error).message}`),
    );
    if (result instanceof PollError) {
      await flush();
      const { attempts, reason } = result;
      const line = { number: null, latencyMs: latency(), attempts, coldStart: null, reason };
      logPoll(pollLogger, { ...base, ...line, outcome: 'failed', backlog: backlog.length });
      return;
    }
    const { number, attempts, coldStart } = result;
    // Once a number has arrived it is written, shutdown or not: the abort only stops waiting.
    backlog.push({ at: new Date(), number });
    const error = await flush();
    for (const oldest of backlog.splice(0, backlog.length - backlogLimit)) {
      drop(oldest, `the backlog is full (${backlogLimit} numbers wait for the file)`);
    }
    const line = { ...base, number, latencyMs: latency(), attempts, coldStart: coldStart ?? null };
    if (error) {
      // The number is in this log line too, whatever becomes of it.
      const reason = `cannot write the numbers file: ${error.message}`;
      logPoll(pollLogger, { ...line, outcome: 'write_failed', reason, backlog: backlog.length });
    } else {
      logPoll(pollLogger, { ...line, outcome: 'ok', backlog: 0 });
    }
  }

  // node-schedule passes the planned time of the tick.
  function fire(scheduledAt: Date) {
    if (stopped) return;
    const deadline = deadlineAfter(scheduledAt);
    // After a pause (a VM's, a laptop's suspend) or a forward clock step node-schedule fires every
    // missed tick at once: those whose window has gone would only fail, and keep the one due now out.
    const late = deadline <= now() && 'its time had passed (the process was paused or the clock jumped)';
    if (late || running) {
      // The same `poll` line as every other tick, so one query over the log counts every outcome.
      logPoll(pollLogger, {
        scheduledAt: scheduledAt.toISOString(),
        driftMs: now() - scheduledAt.getTime(),
        outcome: 'skipped',
        number: null,
        latencyMs: null,
        attempts: 0,
        coldStart: null,
        reason: late || 'the previous poll is still running',
        backlog: backlog.length,
        runningSince: running?.scheduledAt.toISOString(),
      });
      return;
    }
    const controller = new AbortController();
    const done = tick(scheduledAt, deadline, controller.signal)
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
     * aborted) and waits for it to notice. Then one last try at the backlog: what still cannot be
     * written is logged, number by number.
     */
    async stop(graceMs: number): Promise<'idle' | 'finished' | 'aborted'> {
      stopped = true;
      job?.cancel();
      const current = running;
      const timer = setTimeout(() => current?.controller.abort(new Error('shutdown')), graceMs);
      await current?.done;
      clearTimeout(timer);
      const error = await flush();
      for (const entry of backlog.splice(0)) {
        drop(entry, `the agent is stopping and the file cannot take it: ${error?.message}`);
      }
      if (!current) return 'idle';
      return current.controller.signal.aborted ? 'aborted' : 'finished';
    },
  };
}
