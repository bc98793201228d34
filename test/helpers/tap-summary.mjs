// Passes tap's output through and ends it with one plain line, `N passed, N failed`, so that a run
// which executed nothing, or whose summary is missing, is visible. Exits non-zero in either case.
import { createInterface } from 'node:readline';

let summary;
for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(`${line}\n`);
  const m = /^# \{ total: (\d+)(.*)\}$/.exec(line);
  if (m) {
    const count = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(m[2])?.[1] ?? 0);
    summary = {
      total: Number(m[1]),
      pass: count('pass'),
      fail: count('fail'),
      skip: count('skip'),
      todo: count('todo'),
    };
  }
}
if (!summary) {
  console.log('0 passed, 0 failed (no tap summary: the test run did not complete)');
  process.exit(1);
}
const { pass, fail, skip, todo } = summary;
const extra = skip + todo ? `, ${skip + todo} skipped` : '';
console.log(`${pass} passed, ${fail} failed${extra}`);
process.exit(fail > 0 || pass === 0 ? 1 : 0);
