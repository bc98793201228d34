/**
 * Every bounded wait of the EC2 commands, named, with production defaults. Tests against the emulator
 * shrink the poll interval with --poll-interval-ms; the maxima stay as they are.
 */
export interface Waits {
  pollIntervalMs: number;
  /** RunInstances retries while a new instance profile propagates to EC2. */
  profilePropagationMaxMs: number;
  /** SDK waiter: instance running. */
  runningMaxSeconds: number;
  /** The SSM agent on a new instance registering with Systems Manager. */
  registrationMaxMs: number;
  /** One Run Command invocation (the install runs dnf: minutes on a cold instance). */
  commandMaxMs: number;
  /** SDK waiter: instance terminated. */
  terminatedMaxSeconds: number;
  /** A terminated instance's network interface releasing the security group. */
  securityGroupReleaseMaxMs: number;
}

export const DEFAULT_WAITS: Waits = {
  pollIntervalMs: 5_000,
  profilePropagationMaxMs: 120_000,
  runningMaxSeconds: 300,
  registrationMaxMs: 600_000,
  commandMaxMs: 1_200_000,
  terminatedMaxSeconds: 600,
  securityGroupReleaseMaxMs: 300_000,
};

export function timing(waits: Waits, maxWaitMs: number) {
  return { intervalMs: waits.pollIntervalMs, maxWaitMs };
}

export function waiterTiming(waits: Waits, maxWaitSeconds: number) {
  return { maxWaitSeconds, minDelaySeconds: Math.max(1, Math.round(waits.pollIntervalMs / 1000)) };
}
