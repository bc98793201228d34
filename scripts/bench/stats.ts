/** The value at quantile q (0..1) of `values`, by linear interpolation; NaN for no values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  const low = sorted[lo] as number;
  const high = sorted[hi] as number;
  return low + (high - low) * (at - lo);
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);

/** service / baseline, NaN when either is missing. */
export function ratio(service: number, baseline: number): number {
  return Number.isFinite(service) && Number.isFinite(baseline) && baseline !== 0
    ? service / baseline
    : Number.NaN;
}
