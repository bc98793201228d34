import { readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { createFileSink, formatLine } from '../ec2-agent/sink.ts';
import { LINE } from './helpers/agent.ts';
import { fillToWithinALine, mountTmpfs } from './helpers/tmpfs.ts';

t.test('formatLine: `<ISO-8601 UTC> <number>`', async (t) => {
  t.equal(
    formatLine(new Date(Date.UTC(2026, 10, 25, 0, 1, 0, 123)), 42),
    '2026-11-25T00:01:00.123Z 42',
    'exact',
  );
  t.match(formatLine(new Date(), 0), LINE, 'matches the documented pattern');
});

/**
 * Creates `<dir>/<folders...>/randomNumber.txt` through the sink under `umask` (missing folders
 * included); its modes and content.
 */
async function createUnder(t: Test, umask: number, folders = ['new', 'deeper']) {
  const dir = t.testdir();
  const path = join(dir, ...folders, 'randomNumber.txt');
  const old = process.umask(umask);
  try {
    const sink = createFileSink({ path });
    await sink.write(new Date(Date.UTC(2026, 0, 1)), 7);
    await sink.write(new Date(Date.UTC(2026, 0, 1, 0, 1)), 100);
  } finally {
    process.umask(old);
  }
  const mode = async (p: string) => (await stat(p)).mode & 0o777;
  return { text: await readFile(path, 'utf8'), file: await mode(path), folder: await mode(dirname(path)) };
}

t.test('creates the folder and the file, then appends one line per number', async (t) => {
  // The unit's umask: what the sink makes is narrowed by it, never widened back by a chmod.
  const strict = await createUnder(t, 0o077);
  t.equal(
    strict.text,
    '2026-01-01T00:00:00.000Z 7\n2026-01-01T00:01:00.000Z 100\n',
    'two whole lines, each ending in a newline',
  );
  t.equal(strict.file.toString(8), '600', 'umask 0077 (the unit): file 0600, the umask kept');
  t.equal(strict.folder.toString(8), '700', 'umask 0077 (the unit): folder 0700, the umask kept');
  // No umask at all: only the sink's own modes stand between the file and other users' writes.
  const open = await createUnder(t, 0);
  t.equal(open.file.toString(8), '644', 'umask 0: file 0644, readable by all, writable by the agent alone');
  t.equal(open.folder.toString(8), '755', 'umask 0: folder 0755, no one else can add or remove files');
  // A folder that is already there: the file is made by the first open, not the one after mkdir.
  const existing = await createUnder(t, 0, []);
  t.equal(existing.text, strict.text, 'in an existing folder: the same two lines');
  t.equal(existing.file.toString(8), '644', 'umask 0, existing folder: file 0644, the same as in a new one');
});

t.test('a full disk: the append fails with ENOSPC and leaves the file exactly as it was', async (t) => {
  const dir = mountTmpfs(t);
  const path = join(dir, 'randomNumber.txt');
  const filler = join(dir, 'filler');
  const { content, left } = fillToWithinALine(path, filler);
  t.ok(left > 0 && left < 27, `the file's last block has ${left} bytes left: a line can start, not end`);
  const sink = createFileSink({ path });
  for (const number of [7, 100]) {
    await t.rejects(sink.write(new Date(), number), { code: 'ENOSPC' }, `${number}: ENOSPC, said as such`);
    t.equal(await readFile(path, 'utf8'), content, `${number}: not one byte of it is left in the file`);
  }
  await unlink(filler);
  await sink.write(new Date(Date.UTC(2026, 0, 1)), 5);
  t.equal(
    await readFile(path, 'utf8'),
    `${content}2026-01-01T00:00:00.000Z 5\n`,
    'with space back, the next line is whole and joined to nothing',
  );
});

t.test('a write error other than a missing folder is thrown to the caller', async (t) => {
  const dir = t.testdir({ 'a-file': '' });
  const sink = createFileSink({ path: join(dir, 'a-file', 'n.txt') });
  await t.rejects(sink.write(new Date(), 1), { code: /ENOTDIR|EEXIST/ }, 'ENOTDIR surfaces');
});
