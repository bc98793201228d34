import t from 'tap';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { formatResults, parseResults, resultsScript, summarize } from '../scripts/aws/results.ts';
import { bootHost } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, fastAgent, runPayloads } from './helpers/host-agent.ts';
import { eventually } from './helpers/process.ts';
import { startService } from './helpers/service.ts';

const OUTPUT = AGENT_DEFAULTS.outputFile; // /root/randomNumber.txt

// A host boots in seconds, but a busy 2-core machine can stretch a file past tap's default 120 s.
t.setTimeout(300_000);

t.test("ec2-results' commands, run on the host, count what happened there", async (t) => {
  const first = await startService(t);
  const host = await bootHost(t);
  const payloads = await agentCommandPayloads(t, fastAgent(`${first.url}/`));
  t.equal((await runPayloads(host, payloads)).at(-1)?.code, 0, 'installed');
  await host.linesAtLeast(OUTPUT, 2, 10_000);

  // An outage: the service goes away for a few ticks, then a new process (a cold start) comes back on
  // the same port.
  first.kill('SIGTERM');
  await first.exited;
  const journalFailures = async () =>
    (await host.run(['journalctl', '-u', AGENT, '-o', 'cat', '--no-pager']))
      .split('\n')
      .filter((line) => line.includes('"outcome":"failed"')).length;
  const failedTicks = await eventually('two failed polls', async () => {
    const n = await journalFailures();
    return n >= 2 ? n : undefined;
  });
  t.ok(failedTicks >= 2, `the agent logged ${failedTicks} failed polls during the outage`);
  const second = await startService(t, { PORT: String(first.port) });
  const beforeRecovery = host.lines(OUTPUT).length;
  await host.linesAtLeast(OUTPUT, beforeRecovery + 2, 15_000);
  await host.run(['systemctl', 'stop', AGENT]); // a still picture to compare against
  second.kill('SIGTERM');

  const run = await host.runShellScript(resultsScript({ outputFile: OUTPUT, lines: 1000 }));
  t.equal(run.code, 0, `the results script exits 0 (${run.stderr.trim()})`);
  const parsed = parseResults(run.stdout);
  const file = host.lines(OUTPUT);
  t.same(
    parsed.samples.map((s) => `${s.time} ${s.number}`),
    file,
    'every line of the file comes back as a sample',
  );
  t.same(parsed.unparsed, [], 'nothing unparsed');
  const summary = summarize(parsed.samples.map((s) => s.number));
  const numbers = file.map((line) => Number(line.split(' ')[1]));
  t.equal(summary?.count, file.length, 'the count is the number of lines');
  t.equal(summary?.min, Math.min(...numbers), 'min');
  t.equal(summary?.max, Math.max(...numbers), 'max');
  t.equal(
    summary?.histogram.reduce((a, b) => a + b, 0),
    file.length,
    'the histogram holds every number once',
  );
  t.equal(parsed.counts?.failed, await journalFailures(), 'failed polls: as many as the journal holds');
  t.ok((parsed.counts?.failed ?? 0) >= failedTicks, 'including those of the outage');
  // The script shows the journal's last five failures; the outage made two or more (checked above).
  const shown = Math.min(5, parsed.counts?.failed ?? 0);
  t.equal(parsed.failures.length, shown, `the last ${shown} failures are shown`);
  t.same(
    parsed.failures.filter(
      (f) => !(f.outcome === 'failed' && /ECONNREFUSED|connect/i.test(String(f.reason))),
    ),
    [],
    'the failures shown are the refused connections of the outage',
  );
  // Each service process hands out one cold-start number: the first poll, and the first after the outage.
  t.equal(parsed.counts?.coldStarts, 2, 'two cold starts: the first poll and the first after the outage');

  // The --output-file of another install: not "nothing yet", which would never change.
  const elsewhere = '/var/lib/random-number/numbers.txt';
  const wrong = await host.runShellScript(resultsScript({ outputFile: elsewhere, lines: 1000 }));
  t.match(
    formatResults('i-host', parseResults(wrong.stdout), elsewhere),
    `no file ${elsewhere} on the instance: the agent makes it when it starts`,
    'a file the host does not have is reported as missing, with where to look',
  );
});
