import { setTimeout as delay } from 'node:timers/promises';
import { isThrottling, WaitTimeoutError } from './errors.ts';

/** How long a bounded wait polls; every wait in the provisioner takes one so tests can shrink it. */
export interface WaitForTiming {
  intervalMs: number;
  maxWaitMs: number;
}

export interface WaitForOptions<T> extends WaitForTiming {
  /** What is awaited, for the timeout message ("SSM registration of i-123"). */
  what: string;
  /** Appended to the timeout message: what the user can check. */
  hint?: string;
  /** Returns the value when done, `undefined` when not yet. Throttling errors count as "not yet". */
  check: () => Promise<T | undefined>;
  sleep?: (ms: number) => Promise<unknown>;
  now?: () => number;
}

/** Calls `check` until it returns a value or `maxWaitMs` has passed (then WaitTimeoutError). */
export async function waitFor<T>(options: WaitForOptions<T>): Promise<T> {
  const { check, intervalMs, maxWaitMs, what } = options;
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const now = options.now ?? Date.now;
  const start = now();
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      if (!isThrottling(err)) throw err;
      last = err;
    }
    const elapsed = now() - start;
    if (elapsed >= maxWaitMs) {
      const seconds = Math.round(maxWaitMs / 1000);
      const cause = last ? ` (last error: ${(last as Error).name})` : '';
      throw new WaitTimeoutError(
        `gave up waiting for ${what} after ${seconds} s${cause}${options.hint ? `; ${options.hint}` : ''}`,
        {
          cause: last,
        },
      );
    }
    await sleep(Math.min(intervalMs, Math.max(0, maxWaitMs - elapsed)));
  }
}
