import t from 'tap';
import { PollError, type PollRequest } from '../ec2-agent/poll.ts';
import { createScheduler, type SchedulerOptions } from '../ec2-agent/scheduler.ts';
import { memoryLogger } from './helpers/logs.ts';

/** A stand-in for node-schedule's scheduleJob that lets the test fire ticks by hand. */
function manualJobs() {
  const fires: ((date: Date) => void)[] = [];
  let cancelled = false;
  const scheduleJob = ((_spec: string, fire: (date: Date) => void) => {
    fires.push(fire);
    return { cancel: () => (cancelled = true), nextInvocation: () => null };
  }) as never;
  return { scheduleJob, fire: (date: Date) => fires[0]?.(date), cancelled: () => cancelled };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const NUMBER = { number: 1, attempts: 1, coldStart: undefined };
const noSink = { write: async () => {} };

/** A started scheduler on a hand-fired job; `options` fills in the rest. */
function make(options: Partial<SchedulerOptions> & Pick<SchedulerOptions, 'poll' | 'logger'>) {
  const jobs = manualJobs();
  const scheduler = createScheduler({
    schedule: '* * * * *',
    sink: noSink,
    scheduleJob: jobs.scheduleJob,
    ...options,
  });
  scheduler.start();
  return { jobs, scheduler };
}

t.test('never two polls at once: a tick during a poll is skipped and logged', async (t) => {
  const { logger, lines } = memoryLogger();
  const gate = deferred();
  const requests: PollRequest[] = [];
  let running = 0;
  let most = 0;
  const { jobs } = make({
    logger,
    poll: async (request) => {
      requests.push(request);
      running += 1;
      most = Math.max(most, running);
      await gate.promise;
      running -= 1;
      return NUMBER;
    },
  });
  jobs.fire(new Date(Date.UTC(2030, 0, 1, 0, 0)));
  jobs.fire(new Date(Date.UTC(2030, 0, 1, 0, 1)));
  jobs.fire(new Date(Date.UTC(2030, 0, 1, 0, 2)));
  t.equal(requests.length, 1, 'only the first tick polled');
  t.equal(lines().filter((l) => l.outcome === 'skipped').length, 2, 'two skipped ticks logged');
  t.match(
    lines()[0],
    {
      msg: 'poll',
      module: 'scheduler',
      scheduledAt: '2030-01-01T00:01:00.000Z',
      outcome: 'skipped',
      number: null,
      attempts: 0,
      reason: 'the previous poll is still running',
      runningSince: '2030-01-01T00:00:00.000Z',
    },
    'skip line is a poll line that says why',
  );
  gate.resolve();
  await new Promise((r) => setImmediate(r));
  jobs.fire(new Date(Date.UTC(2030, 0, 1, 0, 3)));
  t.equal(requests.length, 2, 'polls again once the first ended');
  t.equal(most, 1, 'never more than one poll at a time');
});

t.test('the deadline leaves the poll 90% of the gap to the next tick', async (t) => {
  const { logger } = memoryLogger();
  const requests: PollRequest[] = [];
  const at = Date.UTC(2030, 0, 1, 0, 0, 0);
  const { jobs } = make({
    schedule: '*/10 * * * * *',
    logger,
    now: () => at,
    poll: async (request) => {
      requests.push(request);
      return NUMBER;
    },
  });
  jobs.fire(new Date(at));
  t.equal(requests[0]?.deadline, at + 9000, 'every 10 s → 9 s budget');
});

t.test('stop: idle, finished within grace, or aborted after it; no ticks after stop', async (t) => {
  const { logger } = memoryLogger();
  /** A scheduler whose poll waits for `gate`, or for the abort when `onAbort` is given. */
  function waiting(gate: Promise<void>, onAbort?: () => void) {
    const runs: PollRequest[] = [];
    const made = make({
      logger,
      poll: async (request) => {
        runs.push(request);
        const aborted = new Promise<void>((r) => request.signal?.addEventListener('abort', () => r()));
        await Promise.race([gate, onAbort ? aborted.then(onAbort) : new Promise(() => {})]);
        if (request.signal?.aborted) throw new PollError('aborted: the agent is stopping');
        return NUMBER;
      },
    });
    return { ...made, runs };
  }

  const idle = waiting(Promise.resolve());
  t.equal(await idle.scheduler.stop(100), 'idle', 'nothing running: idle');
  t.ok(idle.jobs.cancelled(), 'the job is cancelled');
  idle.jobs.fire(new Date());
  t.equal(idle.runs.length, 0, 'a tick after stop does not run');

  const gate = deferred();
  const finishing = waiting(gate.promise);
  finishing.jobs.fire(new Date());
  const stopping = finishing.scheduler.stop(5000);
  gate.resolve();
  t.equal(await stopping, 'finished', 'a poll that ends within the grace: finished');

  let sawAbort = false;
  const stuck = waiting(new Promise(() => {}), () => {
    sawAbort = true;
  });
  stuck.jobs.fire(new Date());
  t.equal(await stuck.scheduler.stop(50), 'aborted', 'a poll past the grace: aborted');
  t.ok(sawAbort, 'the poll saw the abort');
});

t.test('a tick: one `poll` line per outcome; a number is written, a failure is not', async (t) => {
  const { logger, lines } = memoryLogger();
  const written: number[] = [];
  const sink = { write: async (_at: Date, n: number) => void written.push(n) };
  /** Fires one tick at the epoch and waits for it to end. */
  async function tick(options: Partial<SchedulerOptions> & Pick<SchedulerOptions, 'poll'>) {
    const { jobs, scheduler } = make({ logger, sink, ...options });
    jobs.fire(new Date(0));
    t.equal(await scheduler.stop(5000), 'finished', 'the tick ended');
  }

  await tick({ poll: async () => ({ number: 9, attempts: 2, coldStart: true }) });
  t.same(written, [9], 'the number is written');
  t.match(
    lines().at(-1),
    {
      msg: 'poll',
      module: 'poll',
      outcome: 'ok',
      number: 9,
      attempts: 2,
      coldStart: true,
      latencyMs: Number,
      scheduledAt: '1970-01-01T00:00:00.000Z',
    },
    'ok line',
  );

  await tick({
    poll: async () => {
      throw new PollError('HTTP 500', { attempts: 3 });
    },
  });
  t.same(written, [9], 'nothing written on failure');
  t.match(
    lines().at(-1),
    { msg: 'poll', outcome: 'failed', number: null, attempts: 3, reason: 'HTTP 500' },
    'failed line',
  );

  await tick({
    poll: async () => ({ number: 33, attempts: 1, coldStart: undefined }),
    sink: {
      write: async () => {
        throw new Error('ENOSPC: no space left on device');
      },
    },
  });
  t.match(
    lines().at(-1),
    { msg: 'poll', outcome: 'write_failed', number: 33, reason: /ENOSPC/ },
    'a number that cannot be written is still in the log',
  );
  t.equal(lines().filter((l) => l.msg === 'poll').length, 3, 'exactly one line per tick');
});
