import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import t from 'tap';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { LINE } from './helpers/agent.ts';
import { requireHost } from './helpers/host.ts';
import { startForegroundJob } from './helpers/process.ts';

// `make try-ec2` as a person runs it: the emulator, iam-bootstrap, provision-ec2, the payloads on the
// local systemd host, numbers as they land; then Ctrl-C, and nothing of it is left.
t.setTimeout(300_000);
const ROOT = resolve(import.meta.dirname, '..');

const accepts = (url: string) =>
  new Promise<boolean>((done) => {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname, () => {
      done(true);
      socket.destroy();
    });
    socket.on('error', () => done(false));
  });

t.test('make try-ec2: numbers from the EC2 path land, Ctrl-C stops everything', async (t) => {
  requireHost();
  // Its own process group, as a terminal's foreground job, so the test can "press Ctrl-C".
  const run = startForegroundJob(t, 'make', ['-s', 'try-ec2'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, SCHEDULE: '*/2 * * * * *' },
  });
  const { out } = run;
  let shown = 0;
  await run.waitFor((line) => LINE.test(line) && ++shown === 2);
  const text = out.join('\n');
  t.match(text, /✓ permissions boundary: .* created/, 'iam-bootstrap ran against the emulator');
  t.match(text, /done: the agent is installed on i-\w+/, 'provision-ec2 ran to its end');
  t.match(
    text,
    /ec2-results above is for AWS/,
    "says provision-ec2's results hint does not apply to the emulator",
  );
  t.match(
    text,
    /Run Command \d+ of \d+ \(random-number agent \w+: verify and install\): exit 0/,
    'the install payload ran on the host',
  );

  const moto = /moto_server\) on (http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1] ?? '';
  const service = /service on (http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1] ?? '';
  const hostDir = /systemd-nspawn, in (\S+)/.exec(text)?.[1] ?? '';
  // The file itself, not the lines try-ec2 echoed: anything else the agent wrote there shows up here.
  // Read while it runs: the stop removes the host's copy, file and all.
  t.match(hostDir, /^\/./, 'try-ec2 says where the host lives');
  const file = readFileSync(join(hostDir, AGENT_DEFAULTS.outputFile), 'utf8').split('\n');
  t.equal(file.pop(), '', 'the numbers file ends with a newline');
  t.ok(file.length >= shown, `the numbers file holds at least the ${shown} shown (${file.length})`);
  t.same(
    file.filter((line) => !LINE.test(line)),
    [],
    `every line of the numbers file in its own format (${file[0]})`,
  );
  t.ok(
    (await accepts(moto)) && (await accepts(service)) && existsSync(hostDir),
    'all three up while it runs',
  );

  run.interrupt();
  await run.exited;
  t.match(out.join('\n'), /stopped; nothing is left running/, 'says it stopped');
  t.notOk(await accepts(moto), 'the emulator is stopped');
  t.notOk(await accepts(service), 'the service is stopped');
  t.notOk(existsSync(hostDir), 'the host is powered off and its copy removed');
  t.throws(() => process.kill(run.group, 0), { code: 'ESRCH' }, 'no process of it is left');
});
