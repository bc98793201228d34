import { randomInt } from 'node:crypto';
import t from 'tap';
import { uniformInt } from '../functions/random-number/app.ts';
import { startService } from './helpers/service.ts';

/**
 * Chi-square goodness of fit over 101 equally likely values (100 degrees of freedom).
 * Threshold 182.4 is the 1 - 1e-6 quantile of chi-square(100) (Wilson–Hilferty), so a correct
 * uniform source fails this test about once in a million runs; a source that drops or doubles a
 * single value, or a modulo bias, is far above it (see the self-check below).
 */
const CRITICAL_1E6 = 182.4;

function chiSquare(counts: number[], draws: number): number {
  const expected = draws / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}

function histogram(draw: () => number, draws: number): number[] {
  const counts = new Array<number>(101).fill(0);
  for (let i = 0; i < draws; i++) {
    const n = draw();
    counts[n] = (counts[n] ?? 0) + 1;
  }
  return counts;
}

t.test('the service random source is uniform over 0..100 (chi-square, false alarm 1e-6)', async (t) => {
  const draws = 505_000;
  const counts = histogram(() => uniformInt(0, 100), draws);
  t.equal(counts.length, 101, 'only values 0..100 were drawn');
  t.equal(
    counts.reduce((a, b) => a + b, 0),
    draws,
    'every draw is an integer 0..100',
  );
  t.ok((counts[0] ?? 0) > 0, 'lower bound 0 is reachable');
  t.ok((counts[100] ?? 0) > 0, 'upper bound 100 is reachable');
  const x2 = chiSquare(counts, draws);
  t.ok(x2 < CRITICAL_1E6, `chi-square ${x2.toFixed(1)} < ${CRITICAL_1E6}`);
});

t.test('the test detects a biased source (so it can fail)', async (t) => {
  // 8-bit modulo bias, the classic mistake: (byte % 101) makes 0..53 more likely.
  const biased = () => randomInt(0, 256) % 101;
  const x2 = chiSquare(histogram(biased, 505_000), 505_000);
  t.ok(x2 > CRITICAL_1E6, `a modulo-biased source scores ${x2.toFixed(0)}, above ${CRITICAL_1E6}`);
});

t.test('numbers over HTTP from the running bundle are integers 0..100 and both bounds appear', async (t) => {
  const service = await startService(t);
  const seen = new Set<number>();
  // 3000 draws: P(a given bound never appears) = (100/101)^3000 ≈ 1e-13.
  for (let batch = 0; batch < 30; batch++) {
    const bodies = await Promise.all(
      Array.from({ length: 100 }, () => fetch(`${service.url}/`).then((r) => r.text())),
    );
    for (const body of bodies) {
      if (!/^(\d|[1-9]\d|100)\n$/.test(body))
        t.fail(`not a number 0..100 and a newline: ${JSON.stringify(body)}`);
      seen.add(Number(body));
    }
  }
  t.ok(seen.has(0), '0 was served');
  t.ok(seen.has(100), '100 was served');
  t.ok(
    [...seen].every((n) => Number.isInteger(n) && n >= 0 && n <= 100),
    'every value within 0..100',
  );
  t.ok(seen.size > 95, `nearly every value 0..100 appeared (${seen.size} distinct)`);
});
