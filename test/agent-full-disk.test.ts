import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { checkWholeInOrder, fileLines, startAgent } from './helpers/agent.ts';
import { json } from './helpers/process.ts';
import { startService } from './helpers/service.ts';
import { fillToWithinALine, mountTmpfs } from './helpers/tmpfs.ts';

// The agent bundle against the real service, writing to a small tmpfs filled to within a few bytes of
// a line: what a full / or /root does to the numbers file on a small instance.
const EVERY_SECOND = '* * * * * *';
const FULL_TICKS = 3;
t.jobs = 2;

t.test(
  'a full disk tears no line and loses no number; the waiting ones go in once space is back',
  async (t) => {
    const service = await startService(t);
    const dir = mountTmpfs(t);
    const output = join(dir, 'randomNumber.txt');
    const filler = join(dir, 'filler');
    const { content, left } = fillToWithinALine(output, filler);
    t.ok(left < 27, `${left} bytes left in the file's last block: a line can start there, not end`);
    const agent = startAgent(t, { SERVICE_URL: service.url, SCHEDULE: EVERY_SECOND, OUTPUT_FILE: output });

    const full: Record<string, unknown>[] = [];
    while (full.length < FULL_TICKS) full.push(await agent.waitForPoll((p) => p.outcome !== 'skipped'));
    t.match(
      full,
      full.map((_, i) => ({
        outcome: 'write_failed',
        number: Number,
        backlog: i + 1,
        reason: /cannot write the numbers file: ENOSPC/,
      })),
      'while the disk is full: write_failed, ENOSPC, and one more number waiting each tick',
    );
    t.equal(await readFile(output, 'utf8'), content, 'while full, not a byte of a line is in the file');

    await unlink(filler);
    const freed = await agent.waitForPoll((p) => p.outcome === 'ok');
    t.equal(freed.backlog, 0, 'once space is back: ok, nothing waits');
    agent.kill('SIGTERM');
    t.equal((await agent.exited).code, 0, 'SIGTERM: exit 0');

    const lines = await fileLines(output);
    checkWholeInOrder(t, lines, 'every line is exactly "<ISO-8601 UTC ms> <0..100>": none torn, none joined');
    const fetched = agent.polls().filter((p) => typeof p.number === 'number');
    t.same(
      lines.slice(content.split('\n').length - 1).map((line) => Number(line.split(' ')[1])),
      fetched.map((p) => p.number),
      'every number fetched, those of the full disk first, is in the file once, in order',
    );
    const written = lines.slice(-fetched.length);
    for (const [i, poll] of full.entries()) {
      const at = Date.parse((written[i] as string).split(' ')[0] as string);
      t.ok(
        at >= Date.parse(poll.scheduledAt as string) && at <= (poll.time as number),
        `number ${poll.number} keeps the time it arrived (${written[i]}), not the time it was written`,
      );
    }
  },
);

t.test('SIGTERM on a full disk: one last try, then each number not written is logged', async (t) => {
  const service = await startService(t);
  const dir = mountTmpfs(t);
  const output = join(dir, 'randomNumber.txt');
  const { content } = fillToWithinALine(output, join(dir, 'filler'));
  const agent = startAgent(t, { SERVICE_URL: service.url, SCHEDULE: EVERY_SECOND, OUTPUT_FILE: output });
  await agent.waitForPoll((p) => p.backlog === 2);
  agent.kill('SIGTERM');
  t.equal((await agent.exited).code, 0, 'exit 0');
  const waiting = agent.polls().filter((p) => p.outcome === 'write_failed');
  const dropped = agent.stdout.map(json).filter((l) => l.msg === 'number dropped');
  t.same(
    dropped.map((l) => l.number),
    waiting.map((p) => p.number),
    'a "number dropped" line for each number that waited',
  );
  t.match(
    dropped,
    dropped.map(() => ({ arrivedAt: String, reason: /the agent is stopping .*ENOSPC/ })),
    'each with the time it arrived and why',
  );
  t.equal(await readFile(output, 'utf8'), content, 'the file is as it was');
});
