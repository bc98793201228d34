import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadBenchConfig } from '../scripts/bench/config.ts';
import { readCpuMs } from '../scripts/bench/cpu.ts';
import { END, START, writeResults } from '../scripts/bench/doc.ts';
import { nodeVersion } from '../scripts/bench/machine.ts';
import { readMemory } from '../scripts/bench/memory.ts';
import { PEERS } from '../scripts/bench/peers.ts';
import { parseCpuList } from '../scripts/bench/pinning.ts';
import {
  comparisonTable,
  type Ratios,
  ratiosOf,
  roundsAhead,
  summarize,
  targetLines,
} from '../scripts/bench/report.ts';
import type { RoundFigures } from '../scripts/bench/round.ts';
import { startServer } from '../scripts/bench/server-process.ts';
import { median, quantile, ratio } from '../scripts/bench/stats.ts';
import { childPids, eventually, startProcess } from './helpers/process.ts';

const BASELINE = join(import.meta.dirname, '../scripts/bench/baseline-server.mjs');
const HONO = join(import.meta.dirname, '../scripts/bench/hono-server.mjs');

t.test('quantiles interpolate and tolerate unsorted or empty input', async (t) => {
  t.equal(median([3, 1, 2]), 2, 'median of an odd count is the middle value');
  t.equal(median([4, 1, 2, 3]), 2.5, 'median of an even count is the mean of the middle two');
  t.equal(quantile([0, 10], 0.95), 9.5, 'p95 interpolates between neighbours');
  t.ok(Number.isNaN(median([])), 'no values gives NaN, not a crash');
  t.equal(ratio(9, 10), 0.9, 'ratio is service / baseline');
  t.ok(Number.isNaN(ratio(1, 0)), 'a zero baseline gives NaN instead of Infinity');
});

t.test('taskset CPU lists parse into CPU numbers', async (t) => {
  t.same(parseCpuList('0,1'), [0, 1], 'a plain list');
  t.same(parseCpuList(' 0-2,5\n'), [0, 1, 2, 5], 'ranges and whitespace');
});

t.test('BENCH_* configuration: defaults, --write, and a clear error naming a bad variable', async (t) => {
  t.match(
    loadBenchConfig({}, []),
    { durationS: 4, rounds: 5, warmupS: 1, connections: 10, agentTicks: 20, write: false },
    'defaults keep the run near two and a half minutes',
  );
  t.equal(loadBenchConfig({ BENCH_WRITE: '1' }, []).write, true, 'BENCH_WRITE=1 rewrites docs/bench.md');
  t.equal(loadBenchConfig({}, ['--write']).write, true, '--write does the same');
  t.throws(
    () => loadBenchConfig({ BENCH_ROUNDS: '0' }, []),
    { name: 'ConfigError', message: /BENCH_ROUNDS must be a whole number from 1/ },
    'BENCH_ROUNDS=0 is refused with the variable named',
  );
});

t.test('targets: PASS at or within the goal, MISS beyond it', async (t) => {
  const r = (cpu: number): Ratios => ({ cpu, throughput: 1, start: 9, idleRss: 9, loadedRss: 9 });
  const pass = targetLines({ service: r(1.6), 'service-warn': r(1.3), fastify: r(2) });
  t.equal(pass.length, 2, 'one line per goal: CPU with the request line, CPU with LOG_LEVEL=warn');
  for (const line of pass) t.match(line, /^PASS/, `exactly at the goal passes: ${line}`);
  const miss = targetLines({ service: r(1.61), 'service-warn': r(1.31), fastify: r(2) });
  t.equal(miss.length, 2, 'beyond the goals: still one line per goal');
  for (const line of miss) t.match(line, /^MISS/, `beyond the goal misses: ${line}`);
  const [behind] = targetLines({ service: r(1.4), fastify: r(1.3) });
  t.match(behind, /^MISS .*below Fastify's 1\.30×/, 'within 1.6× but behind Fastify still misses');
  const [split] = targetLines({ service: r(1.5), fastify: r(1.55) }, [4, 9]);
  t.match(
    split,
    /^PASS .*below Fastify's 1\.55×; ahead of it in 4 of 9 rounds\)$/,
    'the rounds the service was ahead in are shown beside the medians',
  );
  t.same(targetLines({}), [], 'no service in the run: no verdicts');
  const [, quiet] = targetLines({ service: r(1.6), 'service-warn': r(1.5), hono: r(1.2) });
  t.match(
    quiet,
    /^MISS .*LOG_LEVEL=warn: 1\.50× .*Hono on node-server alone 1\.20×/,
    'the floor is shown beside the goal',
  );
  const [floors] = targetLines({ 'service-warn': r(1.5), hono: r(1.2), 'hono-request-id': r(1.45) });
  t.match(
    floors,
    /^MISS .*Hono on node-server alone 1\.20×, with hono\/request-id 1\.45×\)$/,
    'both floors are shown beside the goal',
  );
});

t.test('ratios are taken round by round against bare node:http, then the median', async (t) => {
  const round = (cpuUsPerRequest: number, requestsPerS: number) =>
    ({ cpuUsPerRequest, requestsPerS, spawnToFirst200Ms: 10, idleRssKb: 100 }) as RoundFigures;
  const bare = [round(10, 100), round(20, 50), round(10, 100)];
  const peer = [round(15, 50), round(30, 25), round(100, 10)];
  const ratios = ratiosOf(peer, bare);
  t.equal(ratios.cpu, 1.5, 'per-round CPU ratios 1.5, 1.5, 10: the median ignores the outlier round');
  t.equal(ratios.throughput, 0.5, 'throughput ratio likewise');
  t.equal(ratios.start, 1, 'equal start times: 1×');
  // A tie is not ahead; a round one of them did not measure (NaN, or missing) is left out of both counts.
  const other = [round(20, 50), round(30, 25), round(Number.NaN, 10), round(99, 1)];
  t.same(
    roundsAhead(peer, other),
    [1, 2],
    'ahead in the first round, level in the second, the third not counted',
  );
  t.same(roundsAhead(other, peer), [0, 2], 'the other way round: ahead in none of the same two');
});

t.test('the table shows idle and loaded memory, each with its ratio to bare', async (t) => {
  const load = { cpuUsPerRequest: 10, requestsPerS: 100, spawnToFirst200Ms: 10 };
  const round = (idleRssKb: number, loadedRssKb: number) =>
    ({ ...load, idleRssKb, loadedRssKb }) as RoundFigures;
  const bare = [round(1024, 2048)];
  const service = [round(2048, 6144)];
  const row = (name: string, rounds: RoundFigures[]) => ({
    name,
    label: name,
    summary: summarize(rounds),
    ratios: ratiosOf(rounds, bare),
  });
  const [header = [], , , cells = []] = comparisonTable([row('bare', bare), row('service', service)])
    .split('\n')
    .map((line) => line.split('|').map((cell) => cell.trim()));
  const idle = header.indexOf('idle RSS MiB');
  const loaded = header.indexOf('loaded RSS MiB');
  t.ok(idle > 0 && loaded > 0, 'an idle and a loaded RSS column');
  t.same(cells.slice(idle, idle + 2), ['2.0', '2.00×'], 'idle: 2 MiB, twice bare');
  t.same(cells.slice(loaded, loaded + 2), ['6.0', '3.00×'], 'under load: 6 MiB, three times bare');
});

t.test('BENCH_PEERS picks servers, always keeps bare, and names an unknown one', async (t) => {
  t.same(
    loadBenchConfig({}, []).peers,
    ['bare', 'hono', 'hono-request-id', 'fastify', 'service', 'service-warn'],
    'all by default',
  );
  t.same(loadBenchConfig({ BENCH_PEERS: 'service' }, []).peers, ['bare', 'service'], 'bare is kept');
  t.throws(
    () => loadBenchConfig({ BENCH_PEERS: 'service,express' }, []),
    { name: 'ConfigError', message: /BENCH_PEERS names unknown servers \(express\)/ },
    'an unknown server is refused with its name',
  );
});

t.test('BENCH_NODE: the node the servers run on, its version in the results, a bad one named', async (t) => {
  t.equal(loadBenchConfig({}, []).node, process.execPath, 'unset: the node running the bench');
  t.equal(
    loadBenchConfig({ BENCH_NODE: '/opt/node22/bin/node' }, []).node,
    '/opt/node22/bin/node',
    'set: that one',
  );
  t.equal(nodeVersion(process.execPath), process.version, 'the version is asked of the binary itself');
  t.throws(
    () => nodeVersion('/nonexistent/node'),
    {
      name: 'ConfigError',
      message: /^invalid configuration: BENCH_NODE \/nonexistent\/node cannot be run \(/,
    },
    'a binary that cannot run: one line naming BENCH_NODE',
  );
  const node22 = process.env.NODE22;
  if (!node22) throw new Error('NODE22 is not set: make test fetches Node.js 22 and sets it');
  const server = await startServer({ name: 'hono', file: HONO }, [], node22);
  t.teardown(() => server.stop());
  t.equal((await fetch(server.url)).status, 200, 'a server started on the given node answers');
  t.match(nodeVersion(node22), /^v22\./, 'and that node is Node.js 22');
});

t.test('docs: results are written between the markers, hand-written text around them kept', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-doc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'bench.md');
  await writeFile(path, `# Bench\n\nintro\n\n${START}\nold figures\n${END}\n\n## Findings\nkept\n`);
  await writeResults(path, 'new figures');
  const text = await readFile(path, 'utf8');
  t.match(text, /intro[\s\S]*new figures[\s\S]*## Findings\nkept/, 'new figures in place, text around kept');
  t.notMatch(text, /old figures/, 'old figures replaced');

  const fresh = join(dir, 'fresh.md');
  await writeResults(fresh, 'first figures');
  t.match(
    await readFile(fresh, 'utf8'),
    /first figures\n<!-- bench:results:end -->/,
    'a missing file is created',
  );
});

t.test('Hono alone answers GET / as the service does, headers included', async (t) => {
  const bare = await startServer({ name: 'bare', file: BASELINE });
  const hono = await startServer({ name: 'hono', file: HONO });
  t.teardown(() => Promise.all([bare.stop(), hono.stop()]));
  const [a, b] = await Promise.all([fetch(bare.url), fetch(hono.url)]);
  for (const name of ['content-type', 'cache-control']) {
    t.equal(b.headers.get(name), a.headers.get(name), `${name} as the baseline's`);
  }
  t.equal(b.status, 200, 'GET / is 200');
  const body = await b.text();
  t.match(body, /^\d{1,3}\n$/, 'a number and a newline');
  t.ok(Number(body) >= 0 && Number(body) <= 100, 'within 0..100');
  t.equal((await hono.stop()).code, 0, 'SIGTERM stops it cleanly');
});

t.test('Hono with hono/request-id answers the same and keeps or makes the request id', async (t) => {
  const peer = PEERS.find((p) => p.name === 'hono-request-id');
  if (!peer) throw new Error('the bench has no hono-request-id peer');
  const server = await startServer(peer);
  const plain = await startServer({ name: 'hono', file: HONO });
  t.teardown(() => Promise.all([server.stop(), plain.stop()]));
  const kept = await fetch(server.url, { headers: { 'X-Request-Id': 'bench-1' } });
  t.equal(kept.headers.get('x-request-id'), 'bench-1', 'an incoming id is echoed');
  t.equal(kept.headers.get('cache-control'), 'no-store', "the route's headers, as Hono alone sends them");
  t.match(await kept.text(), /^\d{1,3}\n$/, 'a number and a newline');
  const made = await fetch(server.url);
  t.match(made.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'no id sent: a fresh UUID');
  t.equal((await fetch(plain.url)).headers.get('x-request-id'), null, 'REQUEST_ID unset: no request id');
});

t.test('the baseline server answers like the service and is measurable', async (t) => {
  const server = await startServer({ name: 'baseline', file: BASELINE });
  t.teardown(() => server.stop());
  const res = await fetch(server.url);
  t.equal(res.status, 200, 'GET / is 200');
  t.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8', 'same content type as the service');
  const body = await res.text();
  t.match(body, /^\d{1,3}\n$/, 'a number and a newline');
  t.ok(Number(body) >= 0 && Number(body) <= 100, 'within 0..100');
  t.ok(server.spawnToFirst200Ms > 0, 'spawn to first 200 is measured');
  if (process.platform === 'linux') {
    t.ok(((await readMemory(server.pid))?.rssKb ?? 0) > 1000, 'resident memory is read from /proc');
    t.ok((await readCpuMs(server.pid)) !== undefined, 'CPU time is read from /proc');
  }
  const stopped = await server.stop();
  t.equal(stopped.code, 0, 'SIGTERM stops it cleanly');
  t.equal(
    (await readMemory(server.pid)) ?? 'gone',
    'gone',
    'memory of a gone process is undefined, not a throw',
  );
});

t.test('a bench told to stop (SIGTERM) stops every server and load process it started', async (t) => {
  const node22 = process.env.NODE22;
  if (!node22) throw new Error('NODE22 is not set: make test fetches Node.js 22 and sets it');
  const root = join(import.meta.dirname, '..');
  const env = { BENCH_NODE: node22, BENCH_PEERS: 'hono', BENCH_ROUNDS: '1', BENCH_DURATION: '60' };
  const bench = startProcess(t, process.execPath, ['--import', 'tsx', 'scripts/bench/main.ts'], {
    cwd: root,
    env: { ...env, BENCH_WARMUP: '0', BENCH_AGENT_TICKS: '0' },
  });
  const pid = bench.child.pid as number;
  const gone = (p: string) => {
    try {
      process.kill(Number(p), 0);
      return false;
    } catch {
      return true;
    }
  };
  // Mid-measurement: a server (pinned or not, it is the node running a bench server) and a load worker.
  const children = await eventually('a bench server and its load worker', async () => {
    const pids = childPids(pid).map(String);
    const lines = await Promise.all(pids.map((p) => readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')));
    const server = pids.find((_, i) => /bench\/(baseline|hono)-server\.mjs/.test(lines[i] ?? ''));
    const worker = pids.find((_, i) => /load-worker\.mjs/.test(lines[i] ?? ''));
    return server && worker ? pids : undefined;
  });
  // Should the bench leave any behind, the test does not.
  t.teardown(() => {
    for (const p of children.filter((p) => !gone(p))) process.kill(Number(p), 'SIGKILL');
  });
  bench.kill('SIGTERM');
  t.same(await bench.exited, { code: 143, signal: null }, 'the bench exits 143 (128 + SIGTERM)');
  await eventually('its children gone', () => (children.every(gone) ? true : undefined), 10_000);
  t.equal(children.filter(gone).length, children.length, `all ${children.length} of its children are gone`);
});
