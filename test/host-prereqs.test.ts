import { chmodSync, copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { bootHost } from './helpers/host.ts';

// make test's prerequisite step on a fresh Debian (the test host is one), as root: nginx is installed
// whether or not the machine has a policy-rc.d (container images ship one), never started, and a
// policy-rc.d that was there is left exactly as it was.
t.setTimeout(600_000);
const SCRIPT = resolve(import.meta.dirname, '../scripts/check-prereqs.sh');
const POLICY = '/usr/sbin/policy-rc.d';

t.test('check-prereqs installs nginx with and without a policy-rc.d, and starts nothing', async (t) => {
  const host = await bootHost(t);
  copyFileSync(SCRIPT, join(host.dir, 'root/check-prereqs.sh'));
  const prereqs = () => host.exec(['bash', '/root/check-prereqs.sh'], { timeoutMs: 400_000 });
  const nginxState = async () => (await host.exec(['systemctl', 'is-active', 'nginx'])).stdout.trim();

  // A container image's own policy-rc.d, as Debian's Docker images ship it.
  const theirs = "#!/bin/sh\n# the image's own: no service starts on install\nexit 101\n";
  writeFileSync(join(host.dir, POLICY), theirs);
  chmodSync(join(host.dir, POLICY), 0o755);
  t.notOk(existsSync(join(host.dir, 'usr/sbin/nginx')), 'a fresh host has no nginx');

  const withPolicy = await prereqs();
  t.ok(existsSync(join(host.dir, 'usr/sbin/nginx')), 'with a policy-rc.d present: nginx is installed');
  t.notMatch(withPolicy.stderr, /missing prerequisite: \/usr\/sbin\/nginx/, 'and not reported missing');
  t.equal(
    readFileSync(join(host.dir, POLICY), 'utf8'),
    theirs,
    'the existing policy-rc.d is left byte for byte',
  );
  t.equal(statSync(join(host.dir, POLICY)).mode & 0o777, 0o755, 'and its mode');
  t.equal(await nginxState(), 'inactive', 'nginx was not started');
  // What it cannot install (kubectl, the AWS CLI, moto) still fails the step, loudly.
  t.equal(withPolicy.code, 1, 'the step fails for what it cannot install');
  t.match(withPolicy.stderr, /missing prerequisite: kubectl/, 'and names it');

  await host.run(['rm', POLICY]);
  await host.run(['apt-get', 'purge', '-y', '-qq', 'nginx', 'nginx-common'], { timeoutMs: 120_000 });
  t.notOk(existsSync(join(host.dir, 'usr/sbin/nginx')), 'nginx removed again');
  const withoutPolicy = await prereqs();
  t.ok(existsSync(join(host.dir, 'usr/sbin/nginx')), 'without a policy-rc.d: nginx is installed');
  t.notMatch(withoutPolicy.stderr, /missing prerequisite: \/usr\/sbin\/nginx/, 'and not reported missing');
  t.notOk(existsSync(join(host.dir, POLICY)), 'the policy-rc.d added for the install is gone');
  t.equal(await nginxState(), 'inactive', 'nginx was not started');
});
