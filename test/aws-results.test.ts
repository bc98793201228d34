import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  formatResults,
  JOURNAL_MARKER,
  parseResults,
  resultsScript,
  summarize,
} from '../scripts/aws/results.ts';

/** The output file the reports below name. */
const OUTPUT = '/root/randomNumber.txt';

t.test('parseResults splits the output file lines from the journal lines', async (t) => {
  const stdout = [
    '2026-11-24T10:00:00.000Z 0',
    '2026-11-24T10:01:00.000Z 100',
    '2026-11-24T10:02:00.000Z 55',
    'garbage line',
    JOURNAL_MARKER,
    // Lines as the agent logs them (ec2-agent/scheduler.ts), as journalctl -o cat prints them;
    // the script sends only the failures, then the counts of the hour.
    '{"level":50,"msg":"poll","scheduledAt":"2026-11-24T10:03:00.000Z","outcome":"failed","number":null,"coldStart":null,"reason":"timeout after 20000 ms"}',
    '{"level":50,"msg":"poll","scheduledAt":"2026-11-24T10:04:00.000Z","outcome":"write_failed","number":7,"reason":"cannot write the numbers file: EACCES"}',
    '{"level":30,"msg":"poll","scheduledAt":"2026-11-24T10:05:00.000Z","outcome":"ok","number":3,"coldStart":true}',
    'not json',
    'counts failed=2 cold=1 skipped=1 file=yes',
    '',
  ].join('\n');
  const parsed = parseResults(stdout);
  t.same(
    parsed.samples.map((s) => s.number),
    [0, 100, 55],
    'the three well-formed lines are samples, in order',
  );
  t.equal(parsed.samples[0]?.time, '2026-11-24T10:00:00.000Z', 'the timestamp is kept');
  t.same(parsed.unparsed, ['garbage line'], 'a malformed output line is reported, not dropped silently');
  t.match(
    formatResults('i-1', parsed, OUTPUT),
    /1 torn or unparsable line\(s\), left out; the first: "garbage line"/,
    'the report counts them and shows the first',
  );
  t.equal(parsed.failures.length, 2, 'a failed poll and a failed write are failures');
  t.same(parsed.counts, { failed: 2, coldStarts: 1, skipped: 1, fileFound: true }, 'the counts line');
  const text = formatResults('i-1', parsed, OUTPUT);
  t.match(text, /failures in the last hour: 2/, 'the report counts the failures');
  t.match(text, /2026-11-24T10:03:00.000Z failed: timeout after 20000 ms/, 'and shows when and why');
  t.match(text, /skipped ticks in the last hour: 1/, 'and the skipped tick');
  t.match(text, /cold starts in the last hour: 1/, 'and the cold start');
  const { counts: _, ...uncounted } = parsed;
  t.match(
    formatResults('i-1', uncounted, OUTPUT),
    /failures in the last hour: 2/,
    'without the count line (output cut short), the failures that came back are counted',
  );
});

t.test(
  'a torn line, or one joined to the next, is reported as such, never read for a timestamp',
  async (t) => {
    const parsed = parseResults(
      [
        '2026-12-04T14:26:45.007Z 41',
        // A full disk took the first 8 bytes of a line, and the next number was appended to them.
        '2026-12-2026-12-04T14:26:46.007Z 88',
        '2026-12-04T14:26:47.007Z 101',
        '2026-12-04T14:26:48Z 5',
        '2026-12-04T14:26:49.007Z  6',
        '2026-12-04T14:26:50.007Z 07',
        '2026-12-04T14:26:51.007Z 100',
        '2026-12-04T14',
        JOURNAL_MARKER,
      ].join('\n'),
    );
    t.same(
      parsed.samples,
      [
        { time: '2026-12-04T14:26:45.007Z', number: 41 },
        { time: '2026-12-04T14:26:51.007Z', number: 100 },
      ],
      'only lines exactly as the agent writes them count',
    );
    t.equal(parsed.unparsed.length, 6, 'the six others are set apart');
    t.match(
      formatResults('i-1', parsed, OUTPUT),
      /6 torn or unparsable line\(s\), left out; the first: "2026-12-2026-12-04T14:26:46.007Z 88"/,
      'the report says how many and shows the first',
    );
    t.match(formatResults('i-1', parsed, OUTPUT), /count 2 /, 'the summary is over the whole lines only');
  },
);

t.test('parseResults of empty output (what the emulator returns) has nothing', async (t) => {
  const parsed = parseResults('');
  t.same(parsed, { samples: [], unparsed: [], failures: [] }, 'all empty');
});

t.test('summarize computes count, min, max, mean and ten buckets with 100 in the last', async (t) => {
  const summary = summarize([0, 9, 10, 50, 99, 100]);
  t.ok(summary, 'a summary for non-empty input');
  t.equal(summary?.count, 6, 'count');
  t.equal(summary?.min, 0, 'min');
  t.equal(summary?.max, 100, 'max');
  t.equal(summary?.mean, 268 / 6, 'mean');
  t.same(summary?.histogram, [2, 1, 0, 0, 0, 1, 0, 0, 0, 2], '0 and 9 in bucket 0, 99 and 100 in bucket 9');
  t.equal(summarize([]), undefined, 'no summary without numbers');
});

t.test('formatResults prints the last lines, the summary and a histogram', async (t) => {
  const text = formatResults(
    'i-1',
    parseResults('2026-11-24T10:00:00.000Z 42\n2026-11-24T10:01:00.000Z 47\n'),
    OUTPUT,
  );
  t.match(text, /== i-1/, 'names the instance');
  t.match(text, /2026-11-24T10:01:00.000Z 47/, 'shows the last lines');
  t.match(text, /count 2 {2}min 42 {2}max 47 {2}mean 44\.5/, 'shows the summary');
  t.match(text, /40–49\s+2 #+/, 'the 40–49 bucket has both, with a bar');
  t.match(text, /90–100\s+0$/m, 'the last bucket is labelled 90–100');
  t.match(text, /failures in the last hour: 0/, 'failures are counted');
});

t.test('formatResults says plainly when there is nothing yet', async (t) => {
  const text = formatResults('i-1', parseResults(''), OUTPUT);
  t.match(text, /nothing yet/, 'says nothing yet');
  t.notMatch(text, /histogram/, 'no empty histogram');
});

t.test('resultsScript, run by sh: a path with a quote, a space and a $; the lines bounded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'results-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Were the path not quoted for the shell, sh would split it, end the quote, or expand $HOME.
  const output = join(dir, "it's $HOME numbers.txt");
  writeFileSync(output, Array.from({ length: 10 }, (_, i) => `2026-11-24T10:0${i}:00.000Z ${i}`).join('\n'));
  // A stand-in journalctl that records how it was asked (and has no journal to print).
  const fake = join(dir, 'journalctl');
  writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$@" >'${join(dir, 'args.txt')}'\n`);
  chmodSync(fake, 0o755);

  const run = spawnSync('sh', ['-c', resultsScript({ outputFile: output, lines: 7 }).join('\n')], {
    env: { PATH: `${dir}:${process.env.PATH}`, HOME: '/nonexistent-home' },
    encoding: 'utf8',
  });
  t.equal(run.status, 0, `the script exits 0 (${run.stderr})`);
  t.equal(run.stderr, '', 'with nothing on stderr (no "No such file" from a split path)');
  t.same(
    parseResults(run.stdout).samples.map((s) => s.number),
    [3, 4, 5, 6, 7, 8, 9],
    "the file's last 7 lines come back, in order",
  );
  t.same(
    readFileSync(join(dir, 'args.txt'), 'utf8').trim().split('\n'),
    ['-u', 'random-number-agent', '--since', '-1h', '-o', 'cat'],
    "journalctl is asked for the last hour of the agent's journal",
  );
});

t.test('the remote script, run locally with a stand-in journalctl, yields the report', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'results-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const output = join(dir, 'randomNumber.txt');
  writeFileSync(
    output,
    Array.from(
      { length: 80 },
      (_, i) => `2026-11-24T10:${String(i % 60).padStart(2, '0')}:00.000Z ${i}`,
    ).join('\n'),
  );
  // What `journalctl -o cat` prints: the agent's JSON lines; 12 failures, 3 cold starts, 2 skipped ticks.
  const journal = [
    ...Array.from(
      { length: 12 },
      (_, i) =>
        `{"msg":"poll","scheduledAt":"2026-11-24T11:${String(i).padStart(2, '0')}:00.000Z","outcome":"failed","reason":"HTTP 503"}`,
    ),
    ...Array.from({ length: 3 }, () => '{"msg":"poll","outcome":"ok","number":5,"coldStart":true}'),
    ...Array.from(
      { length: 2 },
      () => '{"msg":"poll skipped: the previous poll is still running","outcome":"skipped"}',
    ),
    '{"msg":"poll","outcome":"ok","number":6,"coldStart":false}',
  ].join('\n');
  writeFileSync(join(dir, 'journal.txt'), `${journal}\n`);
  const fake = join(dir, 'journalctl');
  writeFileSync(fake, `#!/bin/sh\ncat "${join(dir, 'journal.txt')}"\n`);
  chmodSync(fake, 0o755);

  const run = spawnSync('sh', ['-c', resultsScript({ outputFile: output, lines: 60 }).join('\n')], {
    env: { PATH: `${dir}:${process.env.PATH}` },
    encoding: 'utf8',
  });
  t.equal(run.status, 0, `the script exits 0 (${run.stderr})`);
  const parsed = parseResults(run.stdout);
  t.equal(parsed.samples.length, 60, 'the last 60 lines of the file');
  t.equal(parsed.samples.at(-1)?.number, 79, 'ending with the newest');
  t.same(
    parsed.counts,
    { failed: 12, coldStarts: 3, skipped: 2, fileFound: true },
    'counted on the instance',
  );
  t.equal(parsed.failures.length, 5, 'only the last five failure lines travel back');
  const text = formatResults('i-1', parsed, OUTPUT);
  t.match(text, /failures in the last hour: 12/, 'the report uses the remote count');
  t.match(text, /2026-11-24T11:11:00.000Z failed: HTTP 503/, 'and shows the latest failure');
  t.match(text, /count 60 {2}min 20 {2}max 79/, 'summary over the lines read');

  const missing = spawnSync(
    'sh',
    ['-c', resultsScript({ outputFile: join(dir, 'none.txt'), lines: 60 }).join('\n')],
    {
      env: { PATH: '/usr/bin:/bin' },
      encoding: 'utf8',
    },
  );
  t.equal(missing.status, 0, 'no output file and no journalctl still exits 0');
  t.match(
    formatResults('i-1', parseResults(missing.stdout), join(dir, 'none.txt')),
    `no file ${join(dir, 'none.txt')} on the instance: the agent makes it when it starts; give --output-file as the agent has it (OUTPUT_FILE in /etc/random-number-agent/agent.env)`,
    'and says the file is not there, not "nothing yet" (a wrong --output-file would wait forever)',
  );
  writeFileSync(join(dir, 'empty.txt'), '');
  const empty = spawnSync(
    'sh',
    ['-c', resultsScript({ outputFile: join(dir, 'empty.txt'), lines: 60 }).join('\n')],
    {
      env: { PATH: '/usr/bin:/bin' },
      encoding: 'utf8',
    },
  );
  t.match(
    formatResults('i-1', parseResults(empty.stdout), join(dir, 'empty.txt')),
    /nothing yet/,
    'a file with no number yet reads as nothing yet',
  );
});
