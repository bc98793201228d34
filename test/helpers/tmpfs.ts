import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Teardown } from './process.ts';

/** A line as the agent writes it (28 bytes), dated long before any test runs. */
export const OLD_LINE = '2000-01-01T00:00:00.000Z 42\n';

/** A small tmpfs on a fresh folder (root only: mount), unmounted and removed when the test ends. */
export function mountTmpfs(t: Teardown, size = '256k'): string {
  if (process.getuid?.() !== 0) throw new Error('a tmpfs mount needs root: run the tests as root');
  const dir = mkdtempSync(join(tmpdir(), 'full-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  t.teardown(() => {
    execFileSync('umount', [dir]);
    rmdirSync(dir);
  });
  return dir;
}

/**
 * Fills a file system to within a few bytes of a line: `file` gets whole lines up to a few bytes short
 * of the end of its last block, and `filler` every block left. The next line can start but not end,
 * which is how a full disk tears a line. Returns the bytes `file` holds and how many its block has left.
 */
export function fillToWithinALine(file: string, filler: string): { content: string; left: number } {
  const { bsize, blocks } = statfsSync(dirname(file));
  const content = OLD_LINE.repeat(Math.floor((bsize - 4) / OLD_LINE.length));
  writeFileSync(file, content);
  try {
    writeFileSync(filler, Buffer.alloc(blocks * bsize));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  const { bfree } = statfsSync(dirname(file));
  if (bfree !== 0) throw new Error(`the file system still has ${bfree} blocks free after filling it`);
  return { content, left: bsize - (content.length % bsize) };
}
