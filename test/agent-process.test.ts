import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { fileLines, LINE, startAgent, startStub } from './helpers/agent.ts';
import { json } from './helpers/process.ts';
import { startService } from './helpers/service.ts';

/** An agent that has started and waits for a tick that is a year away: idle, for the shutdown tests. */
async function startIdleAgent(t: Test) {
  const stub = await startStub(t, (_req, res) => res.end('1'));
  const agent = startAgent(t, {
    SERVICE_URL: stub.url,
    SCHEDULE: '0 0 1 1 *',
    OUTPUT_FILE: join(t.testdir(), 'n.txt'),
  });
  await agent.waitForLine((l) => json(l).msg === 'started');
  return agent;
}

const EVERY_SECOND = '*/1 * * * * *';
// The tests wait on one-second cron ticks, not the CPU: run them side by side (each has its own
// processes, servers and files).
t.jobs = 4;

t.test('against the real service: valid lines appear, one per ok poll, numbers as logged', async (t) => {
  const service = await startService(t);
  const output = join(t.testdir(), 'data', 'randomNumber.txt');
  const agent = startAgent(t, { SERVICE_URL: service.url, SCHEDULE: EVERY_SECOND, OUTPUT_FILE: output });
  const started = json(await agent.waitForLine((l) => json(l).msg === 'started'));
  t.match(
    started,
    { schedule: EVERY_SECOND, outputFile: output, auth: 'none', requestTimeoutMs: 20_000 },
    'start line',
  );
  const first = await agent.waitForPoll((p) => p.outcome === 'ok');
  await agent.waitForPoll((p) => p.outcome === 'ok');
  agent.kill('SIGTERM');
  t.equal((await agent.exited).code, 0, 'SIGTERM: exit 0');

  const ok = agent.polls().filter((p) => p.outcome === 'ok');
  const lines = await fileLines(output);
  t.ok(lines.length >= 2, `at least two lines (${lines.length})`);
  t.equal(lines.length, ok.length, 'one line per ok poll, none for anything else');
  for (const line of lines) t.match(line, LINE, `line is "<ISO-8601 UTC> <0..100>": ${line}`);
  t.same(
    lines.map((l) => Number(l.split(' ')[1])),
    ok.map((p) => p.number),
    'the file holds exactly the numbers the log reports, in order',
  );
  t.equal(first.coldStart, true, 'the first number of a fresh service process is a cold start');
  t.match(
    first,
    { scheduledAt: String, driftMs: Number, latencyMs: Number, attempts: 1 },
    'poll line fields',
  );
  t.ok(
    ok.every((p) => (p.driftMs as number) >= 0 && (p.driftMs as number) < 900),
    'ticks begin within 900 ms of their cron time (before the next one)',
  );
  t.ok(
    agent.polls().every((p) => Date.parse(p.scheduledAt as string) % 1000 === 0),
    'polls are scheduled on whole seconds (cron, not an interval)',
  );
});

t.test('the token is sent as Bearer and never logged', async (t) => {
  const token = 'tok-9f8e7d6c5b4a-never-log-me-0123456';
  const service = await startService(t, { API_TOKEN: token });
  const output = join(t.testdir(), 'n.txt');
  const agent = startAgent(t, {
    SERVICE_URL: service.url,
    SCHEDULE: EVERY_SECOND,
    OUTPUT_FILE: output,
    API_TOKEN: token,
    LOG_LEVEL: 'trace',
  });
  t.match(await agent.waitForPoll(), { outcome: 'ok' }, 'the service accepted the token');
  t.match(json(agent.stdout[0] ?? ''), { auth: 'bearer' }, 'start line says a token is used');

  const wrong = startAgent(t, {
    SERVICE_URL: service.url,
    SCHEDULE: EVERY_SECOND,
    OUTPUT_FILE: join(t.testdir(), 'wrong.txt'),
    API_TOKEN: 'not-the-token-0123456789abcdef01234',
  });
  t.match(
    await wrong.waitForPoll(),
    { outcome: 'failed', attempts: 1, reason: /HTTP 401 \(check API_TOKEN/ },
    'a wrong token: 401, not retried, says what to check',
  );
  agent.kill();
  wrong.kill();
  await Promise.all([agent.exited, wrong.exited]);
  const everything = [...agent.stdout, ...agent.stderr, ...wrong.stdout, ...wrong.stderr].join('\n');
  t.notMatch(everything, token, 'the token appears in no output line, even at trace level');
  t.notMatch(everything, 'not-the-token', 'nor does a wrong one');
  t.same(await fileLines(join(t.testdir(), 'wrong.txt')), [], 'a 401 writes nothing');
});

t.test('SIGTERM mid-poll: the poll finishes, its number is written, exit 0', async (t) => {
  let requested!: () => void;
  const inFlight = new Promise<void>((r) => {
    requested = r;
  });
  const stub = await startStub(t, (_req, res) => {
    requested();
    setTimeout(() => res.end('42\n'), 400);
  });
  const output = join(t.testdir(), 'n.txt');
  const agent = startAgent(t, { SERVICE_URL: stub.url, SCHEDULE: EVERY_SECOND, OUTPUT_FILE: output });
  await inFlight;
  agent.kill('SIGTERM');
  const { code } = await agent.exited;
  t.equal(code, 0, 'exit 0');
  t.match(agent.polls(), [{ outcome: 'ok', number: 42 }], 'the poll in flight completed');
  t.ok(
    agent.stdout.some((l) => json(l).msg === 'stopped' && json(l).outcome === 'finished'),
    'logged that it waited for the poll',
  );
  t.equal(stub.requests.length, 1, 'no new poll after SIGTERM');
  t.match(await fileLines(output), [/ 42$/], 'its number is in the file');
});

t.test(
  "the shutdown grace it logs is below the unit's TimeoutStopSec: systemd never SIGKILLs a poll in flight",
  async (t) => {
    const unit = readFileSync(
      resolve(import.meta.dirname, '../ec2-agent/random-number-agent.service'),
      'utf8',
    );
    const stopSec = /^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1];
    t.ok(stopSec, `the unit sets TimeoutStopSec= in whole seconds (${stopSec})`);
    const agent = await startIdleAgent(t);
    agent.kill('SIGTERM');
    const stopping = json(await agent.waitForLine((l) => json(l).msg === 'stopping: no new polls'));
    t.type(stopping.graceMs, 'number', 'the stopping line gives the grace');
    t.ok(
      (stopping.graceMs as number) < Number(stopSec) * 1000,
      `the grace (${stopping.graceMs} ms) ends before systemd's stop timeout (${stopSec} s)`,
    );
    t.equal((await agent.exited).code, 0, 'exit 0');
  },
);

t.test('SIGINT while idle: exit 0 at once', async (t) => {
  const agent = await startIdleAgent(t);
  agent.kill('SIGINT');
  t.equal((await agent.exited).code, 0, 'exit 0');
  t.ok(
    agent.stdout.some((l) => json(l).outcome === 'idle'),
    'nothing was running',
  );
});

t.test(
  'after a pause: the missed ticks are skipped as late, not failed; the tick due now polls',
  async (t) => {
    const service = await startService(t);
    const agent = startAgent(t, {
      SERVICE_URL: service.url,
      SCHEDULE: '*/2 * * * * *',
      OUTPUT_FILE: join(t.testdir(), 'n.txt'),
    });
    const first = await agent.waitForPoll((p) => p.outcome === 'ok');
    // SIGSTOP is what a VM's pause, a laptop's suspend or a forward clock step look like to the process:
    // node-schedule wakes to find every tick since then due, and fires them all at once.
    agent.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 5000));
    // Resume 300 ms into a tick's second: that tick is due now, with 1.7 s left before the next.
    await new Promise((r) => setTimeout(r, (2300 - (Date.now() % 2000)) % 2000));
    const resumedAt = Date.now();
    agent.kill('SIGCONT');
    const polled = await agent.waitForPoll((p) => p.outcome !== 'skipped');
    const since = agent.polls().filter((p) => String(p.scheduledAt) > String(first.scheduledAt));
    const skipped = since.filter((p) => p.outcome === 'skipped');
    t.ok(skipped.length >= 2, `the missed ticks are logged (${skipped.length})`);
    t.match(
      skipped,
      skipped.map(() => ({ msg: 'poll', module: 'poll', attempts: 0, reason: /^its time had passed/ })),
      'each: one skipped poll line saying its time had passed',
    );
    t.same(
      since.filter((p) => p.outcome === 'failed'),
      [],
      'none of them polled into a failure',
    );
    t.match(
      polled,
      { outcome: 'ok', scheduledAt: new Date(resumedAt - (resumedAt % 2000)).toISOString() },
      'the tick due at the resume is polled, and succeeds',
    );
  },
);
