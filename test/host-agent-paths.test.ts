import { statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LINE } from './helpers/agent.ts';
import { bootHost } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, fastAgent, runPayloads } from './helpers/host-agent.ts';
import { startService } from './helpers/service.ts';
import { OLD_LINE } from './helpers/tmpfs.ts';

// `--output-file` anywhere a user may put it: the agent runs as its own unprivileged user, and the
// unit's sandbox opens exactly that file. Each case is installed through the payloads on one real
// host, one after the other (each install is an upgrade of the one before).
const CASES = [
  { path: '/root/randomNumber.txt', what: "the default, over an earlier version's root-owned file" },
  { path: '/home/ec2-user/randomNumber.txt', what: 'in a user home folder (0700, not root)' },
  { path: '/home/ec2-user/random-number/numbers.txt', what: 'a new folder under a home' },
  { path: '/var/lib/random-number/numbers.txt', what: 'a new folder under /var/lib' },
];
const KEYS = '/root/.ssh/authorized_keys';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE admin\n';

// A host boots in seconds, but a busy 2-core machine can stretch a file past tap's default 120 s.
t.setTimeout(300_000);

t.test('the agent writes wherever --output-file says, as its own user, and nothing else', async (t) => {
  const service = await startService(t);
  const host = await bootHost(t);
  const sh = (script: string) => host.run(['sh', '-c', script]);
  // What an earlier version left: root's file (0600, its UMask) with numbers in it; and root's keys.
  await host.run(['sh', '-c', 'umask 077 && cat > /root/randomNumber.txt'], { input: OLD_LINE.repeat(3) });
  await host.run(['sh', '-c', `umask 077 && mkdir -p /root/.ssh && cat > ${KEYS}`], { input: KEY });

  /** A shell in the running agent's mount namespace; `asAgent`: as its process's uid and gid. */
  const agentShell = async () => {
    const { MainPID } = await host.unit(AGENT, ['MainPID']);
    const [uid, gid] = (await sh(`stat -c '%u %g' /proc/${MainPID}`)).trim().split(' ') as [string, string];
    return (script: string, asAgent = false) => {
      const user = asAgent ? ['setpriv', '--reuid', uid, '--regid', gid, '--clear-groups'] : [];
      return host.exec(['nsenter', '-t', MainPID as string, '-m', '--', ...user, 'sh', '-c', script]);
    };
  };

  for (const [i, { path, what }] of CASES.entries()) {
    const payloads = await agentCommandPayloads(t, fastAgent(`${service.url}/`, '--output-file', path));
    const install = (await runPayloads(host, payloads)).at(-1);
    t.equal(install?.code, 0, `${what}: installed (${install?.stderr.trim()})`);
    const lines = await host.linesAtLeast(path, i === 0 ? 5 : 2, 10_000);
    if (i === 0) t.same(lines.slice(0, 3), OLD_LINE.repeat(3).trim().split('\n'), `${what}: every line kept`);
    t.ok(
      lines.slice(i === 0 ? 3 : 0).every((line) => LINE.test(line)),
      `${what}: numbers in ${path}`,
    );
    const uid = Number(await sh(`id -u ${AGENT}`));
    t.not(uid, 0, `${what}: the agent user is not root`);
    t.equal(statSync(join(host.dir, path)).uid, uid, `${what}: the file belongs to the agent user`);
    if (i > 0) t.equal(statSync(join(host.dir, path)).mode & 0o777, 0o644, `${what}: a new file is 0644`);
    const { User, MainPID } = await host.unit(AGENT, ['User', 'MainPID']);
    t.equal(User, AGENT, `${what}: the unit runs it as ${AGENT}`);
    t.equal(Number(await sh(`stat -c %u /proc/${MainPID}`)), uid, `${what}: its process runs as that uid`);
    if (i > 0) continue;
    // Its file in /root, root's keys beside it: as the agent, they cannot be written.
    const keys = await (await agentShell())(`echo ssh-ed25519 intruder >> ${KEYS}`, true);
    t.not(keys.code, 0, `as the agent, ${KEYS} cannot be written (${keys.stderr.trim()})`);
    // Nor as its user outside the sandbox: not root, so /root stays closed whatever the unit says.
    const outside = await host.exec(['runuser', '-u', AGENT, '--', 'sh', '-c', `echo intruder >> ${KEYS}`]);
    t.match(outside.stderr, /Permission denied/, `as ${AGENT} outside its sandbox too`);
    t.equal(host.read(KEYS), KEY, `${KEYS} is unchanged`);
  }
  const parent = statSync(join(host.dir, '/var/lib/random-number'));
  t.same([parent.uid, parent.mode & 0o777], [0, 0o755], 'a missing folder is made root-owned 0755');

  // What the agent itself sees, from inside its mount namespace: only its file is there and writable;
  // home folders are empty and the rest of the system, its file's folder too, read-only.
  const inAgent = await agentShell();
  t.equal(
    (await inAgent('find /root /home -mindepth 1 | wc -l')).stdout.trim(),
    '0',
    'no home folder is visible to it',
  );
  t.equal((await inAgent('touch /etc/probe')).code, 1, 'it cannot write /etc');
  t.match((await inAgent('touch /etc/probe')).stderr, /Read-only file system/, 'read-only');
  t.match(
    (await inAgent('touch /var/lib/random-number/probe')).stderr,
    /Read-only file system/,
    "its file's folder is read-only: no other file can be made there",
  );
  t.equal((await inAgent(': >> /var/lib/random-number/numbers.txt', true)).code, 0, 'its file is writable');
});
