import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The numbers file: one line `<ISO-8601 UTC> <number>` per number received.
 *
 * Each line is one appendFile call (O_APPEND, a single write of a few bytes), so a crash leaves a
 * whole line or none, never half of one. A missing folder is created 0755 and the file 0644: the
 * numbers are not secret, and a reader that is not root (a log shipper, a person with sudo-less
 * access to /opt data) may want them; where they live (default /root) decides who can reach them.
 */
export function createFileSink(options: { path: string; appendFile?: typeof appendFile }) {
  const { path, appendFile: append = appendFile } = options;
  return {
    async write(at: Date, number: number): Promise<void> {
      const line = `${formatLine(at, number)}\n`;
      try {
        await append(path, line, { flag: 'a', mode: 0o644 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await append(path, line, { flag: 'a', mode: 0o644 });
      }
    },
  };
}

/** `2026-11-25T00:01:00.123Z 42`: the time the number arrived, in UTC, then the number. */
export function formatLine(at: Date, number: number): string {
  return `${at.toISOString()} ${number}`;
}
