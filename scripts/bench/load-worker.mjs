// The load generator, in a process of its own so that draining the servers' stdout (done by the bench
// process) never slows it down. `node load-worker.mjs <url> <connections> <seconds>` prints one JSON line:
// { requestsPerS, p50Ms, p99Ms, responses, problems }.
import autocannon from 'autocannon';

const [url, connections, seconds] = process.argv.slice(2);
const latencies = [];
const instance = autocannon({
  url,
  connections: Number(connections),
  pipelining: 1,
  duration: Number(seconds),
  timeout: 10,
});
// Per-response times are sub-millisecond; autocannon's own histogram has 1 ms steps.
instance.on('response', (_client, status, _bytes, responseTimeMs) => {
  if (status === 200) latencies.push(responseTimeMs);
});
const result = await instance;
latencies.sort((a, b) => a - b);
const at = (q) =>
  latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null;
process.stdout.write(
  `${JSON.stringify({
    requestsPerS: result.requests.average,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    responses: latencies.length,
    problems: result.errors + result.timeouts + result.non2xx,
  })}\n`,
);
