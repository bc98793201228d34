import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The numbers file: one line `<ISO-8601 UTC> <number>` per number received.
 *
 * An append writes the whole line or leaves the file exactly as it was: one write on a descriptor
 * opened with O_APPEND, and a short write or an error (a full disk) cut back to the length the file had
 * before, so no torn line is left for the next one to be joined to. A missing folder is created 0755
 * and the file 0644, less the process's umask: the numbers are not secret, so a reader that is not root
 * (a log shipper) may have them, but only the agent writes them; a stricter umask is the operator's
 * choice and is kept (no chmod). Under the unit (UMask=0077) the agent never creates it: install.sh
 * makes the file 0644 before the first start, and the unit binds that file alone.
 */
export function createFileSink({ path }: { path: string }) {
  return {
    async write(at: Date, number: number): Promise<void> {
      const line = Buffer.from(`${formatLine(at, number)}\n`);
      const file = await openForAppend(path);
      try {
        const { size } = await file.stat();
        try {
          const { bytesWritten } = await file.write(line);
          if (bytesWritten < line.length) {
            // libuv retried the rest itself and kept the kernel's error (ENOSPC, EDQUOT, EFBIG) to
            // itself: asking once more brings it back for the log.
            await file.write(line, bytesWritten);
            throw new Error(`short write: ${bytesWritten} of ${line.length} bytes`);
          }
        } catch (err) {
          await file.truncate(size);
          throw err;
        }
      } finally {
        await file.close();
      }
    },
  };
}

/** Opens the numbers file for appending, creating it (0644) and its folder (0755), less the umask, when missing. */
export async function openForAppend(path: string) {
  try {
    return await open(path, 'a', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    return open(path, 'a', 0o644);
  }
}

/** `2026-11-25T00:01:00.123Z 42`: the time the number arrived, in UTC, then the number. */
export function formatLine(at: Date, number: number): string {
  return `${at.toISOString()} ${number}`;
}
