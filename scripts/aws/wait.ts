import { createWaiter, WaiterState } from '@smithy/core/client';
import { isThrottling, WaitTimeoutError } from './errors.ts';

/**
 * Every wait of the EC2 commands is an AWS SDK waiter, with every duration in seconds as the waiters
 * take them: the SDK's own where it has one (instance running, stopped, terminated),
 * and `waitFor`, the same machinery (createWaiter), for the waits it has none for (SSM registration, a
 * new instance profile reaching EC2, a security group released by a terminated instance) or whose SDK
 * waiter retries every error (a command's invocation: see runCommand).
 */
export interface WaitForTiming {
  /** The first delay between checks (--poll-interval-ms), backing off to three times that (at least 1 s). */
  delaySeconds: number;
  maxWaitSeconds: number;
}

/** The bound of each wait the provisioner and teardown run. */
export const MAX_WAIT_SECONDS = {
  /** RunInstances retried while a new instance profile propagates to EC2. */
  profile: 120,
  running: 300,
  /** The SSM agent on a new instance registering with Systems Manager. */
  registered: 600,
  terminated: 600,
  /** A terminated instance's network interface releasing the security group. */
  released: 300,
};

/** The SDK's waiter configuration; the first delay is kept under the maximum, which the SDK requires. */
export function waiterConfig<C>(client: C, timing: WaitForTiming) {
  const { maxWaitSeconds: maxWaitTime } = timing;
  const minDelay = Math.min(timing.delaySeconds, maxWaitTime / 2);
  return { client, minDelay, maxDelay: Math.max(1, 3 * minDelay), maxWaitTime };
}

/** Calls `check` until it returns a value (throttling counts as not yet); WaitTimeoutError when time is up. */
export async function waitFor<T>(
  options: WaitForTiming & { what: string; hint?: string; check: () => Promise<T | undefined> },
): Promise<T> {
  let value: T | undefined;
  let throttled: Error | undefined;
  const { state } = await createWaiter(waiterConfig(undefined, options), undefined, async () => {
    value = await options.check().catch((err: Error) => {
      if (!isThrottling(err)) throw err;
      throttled = err;
      return undefined;
    });
    return { state: value === undefined ? WaiterState.RETRY : WaiterState.SUCCESS };
  });
  if (state === WaiterState.SUCCESS) return value as T;
  const last = throttled ? ` (last error: ${throttled.name})` : '';
  const hint = options.hint ? `; ${options.hint}` : '';
  const message = `gave up waiting for ${options.what} after ${options.maxWaitSeconds} s${last}${hint}`;
  throw new WaitTimeoutError(message, { cause: throttled });
}
