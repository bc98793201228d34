import { statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LINE } from './helpers/agent.ts';
import { bootHost } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, fastAgent, runPayloads } from './helpers/host-agent.ts';
import { startService } from './helpers/service.ts';

// `--output-file` anywhere a user may put it: the unit's sandbox must open exactly that folder, and the
// agent runs as the folder's owner. Each case is installed through the payloads on one real host, one
// after the other (each install is an upgrade of the one before).
const CASES = [
  { path: '/home/ec2-user/randomNumber.txt', owner: 1000, what: 'in a user home folder (0700, not root)' },
  { path: '/home/ec2-user/random-number/numbers.txt', owner: 1000, what: 'a new folder under a home' },
  { path: '/var/lib/random-number/numbers.txt', owner: 0, what: 'a new folder under /var/lib' },
];

// A host boots in seconds, but a busy 2-core machine can stretch a file past tap's default 120 s.
t.setTimeout(300_000);

t.test('the agent writes wherever --output-file says, as the owner of that folder', async (t) => {
  const service = await startService(t);
  const host = await bootHost(t);
  for (const { path, owner, what } of CASES) {
    const payloads = await agentCommandPayloads(t, fastAgent(`${service.url}/`, '--output-file', path));
    const install = (await runPayloads(host, payloads)).at(-1);
    t.equal(install?.code, 0, `${what}: installed (${install?.stderr.trim()})`);
    const lines = await host.linesAtLeast(path, 2, 10_000);
    t.ok(
      lines.every((line) => LINE.test(line)),
      `${what}: numbers in ${path}`,
    );
    t.equal(statSync(join(host.dir, path)).uid, owner, `${what}: the file belongs to the folder's owner`);
    const { User } = await host.unit(AGENT, ['User']);
    t.equal(User, owner === 0 ? 'root' : 'ec2-user', `${what}: the agent runs as ${User}`);
  }
  // What the agent itself sees, from inside its own mount namespace: only the last folder is there and
  // writable; home folders are empty and the rest of the system read-only.
  const { MainPID } = await host.unit(AGENT, ['MainPID']);
  const inAgent = (script: string) =>
    host.exec(['nsenter', '-t', MainPID as string, '-m', '--', 'sh', '-c', script]);
  t.equal(
    (await inAgent('find /root /home -mindepth 1 | wc -l')).stdout.trim(),
    '0',
    'no home folder is visible to it',
  );
  t.equal((await inAgent('touch /etc/probe')).code, 1, 'it cannot write /etc');
  t.match((await inAgent('touch /etc/probe')).stderr, /Read-only file system/, 'read-only');
  t.equal(
    (await inAgent('touch /var/lib/random-number/probe && rm /var/lib/random-number/probe')).code,
    0,
    'its own folder is writable',
  );
});
