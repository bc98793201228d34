import t from 'tap';
import { PollError } from '../ec2-agent/poll.ts';
import { createScheduler, type Tick } from '../ec2-agent/scheduler.ts';
import { createTick } from '../ec2-agent/tick.ts';
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

t.test('never two runs at once: a tick during a run is skipped and logged', async (t) => {
  const { logger, lines } = memoryLogger();
  const jobs = manualJobs();
  const gate = deferred();
  const ticks: Tick[] = [];
  let running = 0;
  let most = 0;
  const scheduler = createScheduler({
    schedule: '* * * * *',
    logger,
    scheduleJob: jobs.scheduleJob,
    task: async (tick) => {
      ticks.push(tick);
      running += 1;
      most = Math.max(most, running);
      await gate.promise;
      running -= 1;
    },
  });
  scheduler.start();
  const at = new Date(Date.UTC(2030, 0, 1, 0, 0));
  jobs.fire(at);
  jobs.fire(new Date(Date.UTC(2030, 0, 1, 0, 1)));
  jobs.fire(new Date(Date.UTC(2030, 0, 1, 0, 2)));
  t.equal(ticks.length, 1, 'only the first tick ran');
  t.equal(lines().filter((l) => l.outcome === 'skipped').length, 2, 'two skipped ticks logged');
  t.match(
    lines()[0],
    {
      msg: 'poll',
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
  t.equal(ticks.length, 2, 'runs again once the first ended');
  t.equal(most, 1, 'never more than one run at a time');
});

t.test('the deadline leaves the tick 90% of the gap to the next one', async (t) => {
  const { logger } = memoryLogger();
  const jobs = manualJobs();
  const ticks: Tick[] = [];
  const at = Date.UTC(2030, 0, 1, 0, 0, 0);
  const scheduler = createScheduler({
    schedule: '*/10 * * * * *',
    logger,
    now: () => at,
    scheduleJob: jobs.scheduleJob,
    task: async (tick) => void ticks.push(tick),
  });
  scheduler.start();
  jobs.fire(new Date(at));
  t.equal(ticks[0]?.deadline, at + 9000, 'every 10 s → 9 s budget');
});

t.test('stop: idle, finished within grace, or aborted after it; no ticks after stop', async (t) => {
  const { logger } = memoryLogger();
  /** A scheduler whose task waits for `gate`, or for the abort when `abortable`. */
  function make(gate: Promise<void>, onAbort?: () => void) {
    const jobs = manualJobs();
    const runs: Tick[] = [];
    const scheduler = createScheduler({
      schedule: '* * * * *',
      logger,
      scheduleJob: jobs.scheduleJob,
      task: async (tick) => {
        runs.push(tick);
        const aborted = new Promise<void>((r) => tick.signal.addEventListener('abort', () => r()));
        await Promise.race([gate, onAbort ? aborted.then(onAbort) : new Promise(() => {})]);
      },
    });
    scheduler.start();
    return { jobs, runs, scheduler };
  }

  const idle = make(Promise.resolve());
  t.equal(await idle.scheduler.stop(100), 'idle', 'nothing running: idle');
  t.ok(idle.jobs.cancelled(), 'the job is cancelled');
  idle.jobs.fire(new Date());
  t.equal(idle.runs.length, 0, 'a tick after stop does not run');

  const gate = deferred();
  const finishing = make(gate.promise);
  finishing.jobs.fire(new Date());
  const stopping = finishing.scheduler.stop(5000);
  gate.resolve();
  t.equal(await stopping, 'finished', 'a run that ends within the grace: finished');

  let sawAbort = false;
  const stuck = make(new Promise(() => {}), () => {
    sawAbort = true;
  });
  stuck.jobs.fire(new Date());
  t.equal(await stuck.scheduler.stop(50), 'aborted', 'a run past the grace: aborted');
  t.ok(sawAbort, 'the run saw the abort');
});

t.test('tick: one `poll` line per outcome; a number is written, a failure is not', async (t) => {
  const { logger, lines } = memoryLogger();
  const written: number[] = [];
  const sink = { write: async (_at: Date, n: number) => void written.push(n) };
  const base = {
    scheduledAt: new Date(0),
    deadline: Date.now() + 1000,
    signal: new AbortController().signal,
  };

  await createTick({ poll: async () => ({ number: 9, attempts: 2, coldStart: true }), sink, logger })(base);
  t.same(written, [9], 'the number is written');
  t.match(
    lines().at(-1),
    {
      msg: 'poll',
      outcome: 'ok',
      number: 9,
      attempts: 2,
      coldStart: true,
      latencyMs: Number,
      scheduledAt: '1970-01-01T00:00:00.000Z',
    },
    'ok line',
  );

  await createTick({
    poll: async () => {
      throw new PollError('HTTP 500', 3);
    },
    sink,
    logger,
  })(base);
  t.same(written, [9], 'nothing written on failure');
  t.match(
    lines().at(-1),
    { msg: 'poll', outcome: 'failed', number: null, attempts: 3, reason: 'HTTP 500' },
    'failed line',
  );

  await createTick({
    poll: async () => ({ number: 33, attempts: 1, coldStart: undefined }),
    sink: {
      write: async () => {
        throw new Error('ENOSPC: no space left on device');
      },
    },
    logger,
  })(base);
  t.match(
    lines().at(-1),
    { msg: 'poll', outcome: 'write_failed', number: 33, reason: /ENOSPC/ },
    'a number that cannot be written is still in the log',
  );
  t.equal(lines().filter((l) => l.msg === 'poll').length, 3, 'exactly one line per tick');
});
