import autocannon from 'autocannon';
import { quantile } from './stats.ts';

export interface LoadOptions {
  durationS: number;
  connections: number;
}

export interface LoadResult {
  /** Mean of autocannon's per-second samples of completed requests. */
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  responses: number;
  /** Connection errors, timeouts and non-2xx answers: any of these makes the figures suspect. */
  problems: number;
}

/**
 * Keep-alive GET / load from this process with autocannon's programmatic API. Latencies come from
 * the per-response times (sub-millisecond), since autocannon's own histogram has 1 ms resolution,
 * too coarse for a loopback p50.
 */
export async function runLoad(url: string, { durationS, connections }: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const instance = autocannon({ url, connections, pipelining: 1, duration: durationS, timeout: 10 });
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTimeMs: number) => {
    if (status === 200) latencies.push(responseTimeMs);
  });
  const result = await instance;
  return {
    requestsPerS: result.requests.average,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    responses: latencies.length,
    problems: result.errors + result.timeouts + result.non2xx,
  };
}
