import { setTimeout as sleep } from 'node:timers/promises';
import cronParser from 'cron-parser';
import schedule from 'node-schedule';
import { logPoll } from '../lib/contract.ts';
import type { Logger } from '../lib/logger.ts';

export interface Tick {
  scheduledAt: Date;
  /** Epoch ms by which the tick's work must be over: before the next tick is due. */
  deadline: number;
  /** Aborted when shutdown gives up waiting. */
  signal: AbortSignal;
}

export interface SchedulerOptions {
  /** A cron expression (5 fields, or 6 with seconds), already validated by config. */
  schedule: string;
  task: (tick: Tick) => Promise<void>;
  logger: Logger;
  now?: () => number;
  scheduleJob?: typeof schedule.scheduleJob;
}

/** The share of the gap to the next tick that a tick may use, leaving room to write and log. */
const BUDGET_SHARE = 0.9;

/**
 * Runs `task` on a cron schedule, never two at once: node-schedule fires regardless of whether the
 * last run ended, so a tick that finds one still running is skipped (and logged), not queued.
 */
export function createScheduler(options: SchedulerOptions) {
  const { task, logger, now = Date.now, scheduleJob = schedule.scheduleJob } = options;
  let running: { done: Promise<void>; controller: AbortController; scheduledAt: Date } | undefined;
  let job: schedule.Job | undefined;
  let stopped = false;

  function deadlineAfter(scheduledAt: Date): number {
    const next = cronParser.parseExpression(options.schedule, { currentDate: scheduledAt }).next().getTime();
    const from = Math.max(scheduledAt.getTime(), now());
    return from + Math.max(0, next - from) * BUDGET_SHARE;
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
    const done = task({ scheduledAt, deadline: deadlineAfter(scheduledAt), signal: controller.signal })
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
    /** The next planned tick, for the start-up log line. */
    nextTick(): Date | undefined {
      const next = job?.nextInvocation();
      return next ? new Date(next.getTime()) : undefined;
    },
    get busy(): boolean {
      return running !== undefined;
    },
    /**
     * No new ticks; waits for a running one up to `graceMs`, then aborts it (it writes nothing once
     * aborted) and waits for it to notice.
     */
    async stop(graceMs: number): Promise<'idle' | 'finished' | 'aborted'> {
      stopped = true;
      job?.cancel();
      const current = running;
      if (!current) return 'idle';
      const grace = new AbortController();
      const late = sleep(graceMs, true, { signal: grace.signal }).catch(() => false);
      const isLate = await Promise.race([current.done.then(() => false), late]);
      grace.abort();
      if (!isLate) return 'finished';
      current.controller.abort(new Error('shutdown'));
      await current.done;
      return 'aborted';
    },
  };
}
