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
      module: 'poll',
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

t.test(
  'after a pause or a clock jump: ticks whose time has passed are skipped, the one due now polls',
  async (t) => {
    const { logger, lines } = memoryLogger();
    const requests: PollRequest[] = [];
    const minute = (m: number) => new Date(Date.UTC(2030, 0, 1, 0, m));
    const at = minute(5).getTime() + 30_000;
    const { jobs } = make({
      logger,
      now: () => at,
      poll: async (request) => {
        requests.push(request);
        return NUMBER;
      },
    });
    // What node-schedule does on waking: every tick it missed, oldest first, at once.
    for (const m of [2, 3, 4, 5]) jobs.fire(minute(m));
    t.same(
      requests.map((r) => r.deadline),
      [at + 27_000],
      'one poll, the tick due now, with 90% of what is left of its minute',
    );
    t.match(
      lines(),
      [2, 3, 4].map((m) => ({
        msg: 'poll',
        module: 'poll',
        scheduledAt: minute(m).toISOString(),
        driftMs: at - minute(m).getTime(),
        outcome: 'skipped',
        number: null,
        attempts: 0,
        reason: 'its time had passed (the process was paused or the clock jumped)',
      })),
      'each tick whose window had passed: one skipped poll line saying why, no failure',
    );
    t.equal(lines().length, 3, 'and nothing else yet: the tick due now is still polling');
  },
);

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
  /** Fires one tick at the epoch, on a clock at the epoch (the tick due now), and waits for it to end. */
  async function tick(options: Partial<SchedulerOptions> & Pick<SchedulerOptions, 'poll'>) {
    const { jobs, scheduler } = make({ logger, sink, now: () => 0, ...options });
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
      throw Object.assign(new PollError('HTTP 500'), { attempts: 3 });
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
    lines()
      .filter((l) => l.msg === 'poll')
      .at(-1),
    { msg: 'poll', outcome: 'write_failed', number: 33, reason: /ENOSPC/, backlog: 1 },
    'a number that cannot be written is still in the log',
  );
  t.match(lines().at(-1), { msg: 'number dropped', number: 33 }, 'and, at the stop, said to be lost');
  t.equal(lines().filter((l) => l.msg === 'poll').length, 3, 'exactly one line per tick');
});

t.test('driftMs: how late the tick began against its cron time, on every outcome', async (t) => {
  const { logger, lines } = memoryLogger();
  for (const poll of [async () => NUMBER, async () => Promise.reject(new PollError('HTTP 500'))]) {
    const { jobs, scheduler } = make({ logger, now: () => 250, poll });
    jobs.fire(new Date(0));
    await scheduler.stop(5000);
  }
  t.match(
    lines(),
    [
      { msg: 'poll', outcome: 'ok', scheduledAt: '1970-01-01T00:00:00.000Z', driftMs: 250 },
      { msg: 'poll', outcome: 'failed', scheduledAt: '1970-01-01T00:00:00.000Z', driftMs: 250 },
    ],
    'fired at 0 on a clock at 250: 250 ms late, ok or failed',
  );
});

t.test('a number is written with the time it arrived, not the time the tick was due', async (t) => {
  const { logger } = memoryLogger();
  const written: Date[] = [];
  const sink = { write: async (at: Date) => void written.push(at) };
  const poll = async () => {
    await new Promise((r) => setTimeout(r, 60));
    return NUMBER;
  };
  const { jobs, scheduler } = make({ logger, sink, poll });
  const scheduledAt = new Date();
  jobs.fire(scheduledAt);
  t.equal(await scheduler.stop(5000), 'finished', 'the tick ended');
  const at = written[0]?.getTime() ?? Number.NaN;
  t.ok(
    at >= scheduledAt.getTime() + 50,
    `written at ${at - scheduledAt.getTime()} ms after its cron time: when the poll answered`,
  );
});

/** A sink over an array that refuses every line while `full` is set, as a full disk does. */
function diskSink() {
  const state = { full: true, lines: [] as { at: Date; number: number }[] };
  const write = async (at: Date, number: number) => {
    if (state.full)
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    state.lines.push({ at, number });
  };
  return { state, sink: { write } };
}

/** Polls that answer 1, 2, 3, … in turn, or fail while `down` is set. */
function counting() {
  const state = { down: false, served: 0 };
  const poll = async () => {
    if (state.down) throw new PollError('HTTP 503');
    state.served += 1;
    return { number: state.served, attempts: 1, coldStart: undefined };
  };
  return { state, poll };
}

/** Fires one tick and waits until it has ended. */
async function tickAndWait(made: ReturnType<typeof make>) {
  made.jobs.fire(new Date());
  while (made.scheduler.busy()) await new Promise((r) => setTimeout(r, 1));
}

t.test('numbers the file refuses wait in order with their own time, then go in first', async (t) => {
  const { logger, lines } = memoryLogger();
  const disk = diskSink();
  const service = counting();
  const made = make({ logger, sink: disk.sink, poll: service.poll });
  await tickAndWait(made);
  await tickAndWait(made);
  service.state.down = true;
  await tickAndWait(made);
  t.match(
    lines(),
    [
      { outcome: 'write_failed', number: 1, backlog: 1, reason: /cannot write the numbers file: ENOSPC/ },
      { outcome: 'write_failed', number: 2, backlog: 2 },
      { outcome: 'failed', number: null, backlog: 2 },
    ],
    'each poll line says how many numbers wait',
  );
  t.same(disk.state.lines, [], 'nothing reached the file while it was full');

  await new Promise((r) => setTimeout(r, 20));
  const freedAt = Date.now();
  disk.state.full = false;
  await tickAndWait(made);
  t.same(
    disk.state.lines.map((l) => l.number),
    [1, 2],
    'a tick with no number still writes the waiting ones as soon as the file takes them',
  );
  t.match(lines().at(-1), { outcome: 'failed', backlog: 0 }, 'and says none wait');
  service.state.down = false;
  await tickAndWait(made);
  t.same(
    disk.state.lines.map((l) => l.number),
    [1, 2, 3],
    'the next number after them, oldest first',
  );
  const times = disk.state.lines.map((l) => l.at.getTime());
  t.same(
    times,
    [...times].sort((a, b) => a - b),
    'in time order',
  );
  t.ok(
    times.slice(0, 2).every((time) => time < freedAt),
    'the waiting numbers keep the time they arrived, not the time they were written',
  );
  t.match(lines().at(-1), { outcome: 'ok', number: 3, backlog: 0 }, 'ok, nothing waits');
});

t.test('past the bound the oldest waiting number is dropped, counted and logged as such', async (t) => {
  const { logger, lines } = memoryLogger();
  const disk = diskSink();
  const service = counting();
  const made = make({ logger, sink: disk.sink, poll: service.poll, backlogLimit: 2 });
  for (let i = 0; i < 4; i++) await tickAndWait(made);
  const dropped = lines().filter((l) => l.msg === 'number dropped');
  t.match(
    dropped,
    [
      { level: 50, number: 1, dropped: 1, arrivedAt: String, reason: /the backlog is full \(2 numbers/ },
      { number: 2, dropped: 2 },
    ],
    'one error line per dropped number, with the running count',
  );
  t.match(lines().at(-1), { outcome: 'write_failed', number: 4, backlog: 2 }, 'the bound holds');
  disk.state.full = false;
  await tickAndWait(made);
  t.same(
    disk.state.lines.map((l) => l.number),
    [3, 4, 5],
    'the newest ones waited and are written',
  );
});

t.test('stop: one last try at the backlog; what still cannot be written is logged', async (t) => {
  const { logger, lines } = memoryLogger();
  const disk = diskSink();
  const service = counting();
  const full = make({ logger, sink: disk.sink, poll: service.poll });
  await tickAndWait(full);
  await tickAndWait(full);
  t.equal(await full.scheduler.stop(100), 'idle', 'stopped');
  t.match(
    lines().filter((l) => l.msg === 'number dropped'),
    [
      { number: 1, reason: /the agent is stopping and the file cannot take it: ENOSPC/ },
      { number: 2, reason: /stopping/ },
    ],
    'a full disk at stop: each number not written is logged',
  );

  const freed = diskSink();
  const again = make({ logger, sink: freed.sink, poll: counting().poll });
  await tickAndWait(again);
  freed.state.full = false;
  await again.scheduler.stop(100);
  t.same(
    freed.state.lines.map((l) => l.number),
    [1],
    'space back before the stop: the waiting number is written at stop',
  );
});
