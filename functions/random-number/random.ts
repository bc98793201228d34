import { randomInt } from 'node:crypto';

/**
 * A uniform integer in [min, max], both inclusive, from the operating system's CSPRNG.
 * crypto.randomInt rejects and redraws rather than taking a modulo, so there is no bias.
 */
export function uniformInt(min: number, max: number): number {
  return randomInt(min, max + 1);
}
