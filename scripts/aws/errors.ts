import { isThrottlingError } from '@smithy/core/retry';
import { TransientError } from '../../lib/errors.ts';

/** A bounded wait ran out. The message says what was awaited and what to check. */
export class WaitTimeoutError extends TransientError {
  override name = 'WaitTimeoutError';
}

/** An SSM command ended in a state other than Success; carries the remote stderr. */
export class CommandFailedError extends TransientError {
  override name = 'CommandFailedError';
}

/** A command's payload would not fit SSM's 64 KB limit. */
export class PayloadTooLargeError extends TransientError {
  override name = 'PayloadTooLargeError';
}

/** Something in the account prevents a step (no default VPC, a name taken by a foreign resource, ...). */
export class AwsStateError extends TransientError {
  override name = 'AwsStateError';
}

/**
 * The error's name, for matching AWS errors the SDK has no class for (EC2's: `err.name` is the service's
 * error code in SDK v3).
 */
export const errorName = (err: unknown): string => (err instanceof Error ? err.name : '');

/**
 * Throttling is transient: wait loops treat it as "not yet" (the SDK already retried a few times). The
 * SDK's rule, plus SSM's TooManyUpdates, which it does not list.
 */
export function isThrottling(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'TooManyUpdates' || isThrottlingError(err as Parameters<typeof isThrottlingError>[0]);
}

/** The SDK's class of an error (ParameterNotFound, NoSuchEntityException, ...), for `instanceof`. */
type ErrorClass = new (...args: never[]) => Error;

/** The call's result, or undefined when it fails with one of the SDK's `absent` errors (no such resource). */
export async function unlessAbsent<T>(call: Promise<T>, ...absent: ErrorClass[]): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (absent.some((type) => err instanceof type)) return undefined;
    throw err;
  }
}
