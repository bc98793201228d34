import { join } from 'node:path';
import t from 'tap';
import { fileLines, LINE, startAgent, startStub } from './helpers/agent.ts';
import { startService } from './helpers/service.ts';

const EVERY_SECOND = '*/1 * * * * *';
// The tests wait on one-second cron ticks, not the CPU: run them side by side (each has its own
// processes, servers and files).
t.jobs = 3;

t.test('service down, then up, then down again: no lines while down, agent alive, resumes', async (t) => {
  // A port that was free a moment ago, with nothing listening yet.
  const probe = await startStub(t, () => {});
  const port = probe.port;
  await probe.close();
  const output = join(t.testdir(), 'n.txt');
  const agent = startAgent(t, {
    SERVICE_URL: `http://127.0.0.1:${port}/`,
    SCHEDULE: EVERY_SECOND,
    OUTPUT_FILE: output,
  });
  const down = await agent.waitForPoll();
  t.match(
    down,
    { outcome: 'failed', number: null, reason: /network error: ECONNREFUSED/ },
    'down: failed poll says why',
  );
  t.ok(Number(down.attempts) >= 2, `down: retried within the tick (${down.attempts} attempts)`);
  t.same(await fileLines(output), [], 'down: nothing written');

  const service = await startService(t, { PORT: String(port) });
  t.match(
    await agent.waitForPoll((p) => p.outcome === 'ok'),
    { number: Number },
    'up: resumes on a later tick',
  );
  service.kill('SIGKILL');
  await service.exited;
  const okBefore = (await fileLines(output)).length;
  await agent.waitForPoll((p) => p.outcome === 'failed');
  await agent.waitForPoll((p) => p.outcome === 'failed');
  t.equal((await fileLines(output)).length, okBefore, 'down again: no new lines');
  t.equal(agent.child.exitCode, null, 'the agent is still running');
  for (const line of await fileLines(output)) t.match(line, LINE, 'every line is valid');
});

t.test('500, garbage and out-of-range answers: no lines, agent alive, then resumes', async (t) => {
  const answers: [string, number, string, string, RegExp][] = [
    ['500', 500, 'text/plain', 'oops', /HTTP 500/],
    ['HTML', 200, 'text/html', '<html><body>42</body></html>', /content type text\/html/],
    ['150', 200, 'text/plain', '150\n', /not an integer 0\.\.100: "150/],
    ['-1', 200, 'text/plain', '-1\n', /not a whole number: "-1/],
    ['42.5', 200, 'text/plain', '42.5\n', /not a whole number: "42\.5/],
    ['empty', 200, 'text/plain', '', /not a whole number: ""$/],
    ['42abc', 200, 'text/plain', '42abc', /not a whole number: "42abc"/],
    ['JSON 101', 200, 'application/json', '{"number":101}', /not an integer 0\.\.100/],
  ];
  // Two agents, four bad answers each in a row, side by side: half the ticks of one agent taking all eight.
  const groups = [answers.slice(0, 4), answers.slice(4)];
  await Promise.all(
    groups.map(async (group, g) => {
      let current = group[0] as (typeof answers)[number];
      const stub = await startStub(t, (_req, res) => {
        res.writeHead(current[1], { 'content-type': current[2] });
        res.end(current[3]);
      });
      const output = join(t.testdir(), `n${g}.txt`);
      const agent = startAgent(t, { SERVICE_URL: stub.url, SCHEDULE: EVERY_SECOND, OUTPUT_FILE: output });
      for (const answer of group) {
        current = answer;
        const poll = await agent.waitForPoll((p) => typeof p.reason === 'string' && answer[4].test(p.reason));
        t.match(
          poll,
          { outcome: 'failed', number: null },
          `${answer[0]}: a failed poll saying why (${poll.reason})`,
        );
      }
      const names = group.map((a) => a[0]).join(', ');
      t.same(await fileLines(output), [], `no line for any bad answer (${names})`);
      t.equal(agent.child.exitCode, null, `the agent is still running after ${names}`);
      current = ['good', 200, 'text/plain', '42\n', /./];
      t.match(
        await agent.waitForPoll((p) => p.outcome === 'ok'),
        { number: 42 },
        `resumes with a good answer after ${names}`,
      );
      const lines = await fileLines(output);
      t.ok(
        lines.length >= 1 && lines.every((l) => LINE.test(l) && l.endsWith(' 42')),
        `the good number, and only it, is written after ${names}`,
      );
    }),
  );
});

t.test('a slow service: each poll ends within its tick, never two at once', async (t) => {
  let open = 0;
  let most = 0;
  const stub = await startStub(t, (_req, res) => {
    open += 1;
    most = Math.max(most, open);
    const timer = setTimeout(() => res.end('5'), 3000);
    res.on('close', () => {
      clearTimeout(timer);
      open -= 1;
    });
  });
  const output = join(t.testdir(), 'n.txt');
  const agent = startAgent(t, { SERVICE_URL: stub.url, SCHEDULE: EVERY_SECOND, OUTPUT_FILE: output });
  const polls = [await agent.waitForPoll(), await agent.waitForPoll(), await agent.waitForPoll()];
  for (const poll of polls) {
    t.match(poll, { outcome: /failed|skipped/ }, `slow answer: ${poll.outcome} (${poll.reason ?? ''})`);
  }
  t.match(polls[0], { reason: /timed out after \d+ ms/ }, 'the poll gave up at the end of its tick budget');
  t.ok(Number(polls[0]?.latencyMs) < 1000, `it ended before the next tick (${polls[0]?.latencyMs} ms)`);
  t.equal(most, 1, 'the service never saw two requests at once');
  t.same(await fileLines(output), [], 'nothing written');
});
