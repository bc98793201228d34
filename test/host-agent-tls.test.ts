import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LINE } from './helpers/agent.ts';
import { bootHost, type Host } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, FAST_SCHEDULE, runPayloads } from './helpers/host-agent.ts';
import { nginxFront } from './helpers/nginx.ts';
import { eventually, json } from './helpers/process.ts';
import { startService } from './helpers/service.ts';
import { reissue, tlsCert } from './helpers/tls.ts';

// TLS end to end on the real systemd host, as a user runs it: `make tls-cert` certificates, nginx
// (Debian's package) terminating TLS on loopback in front of the built service (both run on this
// machine, whose network the host shares: its 127.0.0.1 is theirs), DOMAIN resolving to 127.0.0.1
// through the host's own /etc/hosts, and the agent installed by the very payloads
// `npm run agent-command --ca-cert ...` writes, run as root with sh, under systemd on Node.js 22.
const DOMAIN = 'numbers.random-number.test';
// Under DOMAIN: the CA tls-cert made for DOMAIN issues for DOMAIN and its subdomains only.
const OTHER = `other.${DOMAIN}`;
// Under ec2-user's home (0700): the agent, its own unprivileged user, reaches it only through the
// unit's bind, and must read the CA.
const OUTPUT = '/home/ec2-user/randomNumber.txt';
const EXTRA_CA = '/etc/random-number-agent/extra-ca.pem';

// Five installs through the payloads on a booted host: more than the default two minutes on a busy machine.
t.setTimeout(300_000);

/** The `poll` lines the agent logged since it last started (this systemd invocation). */
async function pollsOfThisRun(host: Host): Promise<Record<string, unknown>[]> {
  const { InvocationID: id } = await host.unit(AGENT, ['InvocationID']);
  const out = await host.exec(['journalctl', `_SYSTEMD_INVOCATION_ID=${id}`, '-o', 'cat', '--no-pager']);
  return out.stdout
    .split('\n')
    .map(json)
    .filter((line) => line.msg === 'poll');
}

/** Installs through the payloads; resolves once the install payload has exited 0. */
async function install(t: Test, host: Host, args: string[]) {
  const payloads = await agentCommandPayloads(t, [
    '--schedule',
    FAST_SCHEDULE,
    '--output-file',
    OUTPUT,
    ...args,
  ]);
  const results = await runPayloads(host, payloads);
  const last = results.at(-1);
  t.equal(last?.code, 0, `the install payload exits 0${last?.code ? `: ${last.stderr.trim()}` : ''}`);
  return last?.stdout ?? '';
}

t.test(
  'over TLS with a private CA: numbers with --ca-cert; none without it, for another name or expired',
  async (t) => {
    const dir = t.testdir();
    const certs = join(dir, 'certs');
    t.equal(tlsCert(certs, [DOMAIN]).status, 0, 'make tls-cert DOMAIN=...');
    t.equal(tlsCert(certs, [OTHER]).status, 0, 'and a certificate for another name from the same CA');
    const expired = join(dir, 'expired.crt');
    reissue(certs, DOMAIN, -30, -1, expired);

    const service = await startService(t);
    const nginx = nginxFront(t, dir, DOMAIN, service.port);
    const good = await nginx('good', join(certs, `${DOMAIN}.crt`), join(certs, `${DOMAIN}.key`));
    const other = await nginx('other', join(certs, `${OTHER}.crt`), join(certs, `${OTHER}.key`));
    const old = await nginx('expired', expired, join(certs, `${DOMAIN}.key`));

    const host = await bootHost(t);
    await host.run(['sh', '-c', `echo '127.0.0.1 ${DOMAIN}' >> /etc/hosts`]);
    t.match(
      await host.run(['getent', 'hosts', DOMAIN]),
      /^127\.0\.0\.1\s/,
      'DOMAIN resolves to 127.0.0.1 in the host',
    );
    const url = (port: number) => `https://${DOMAIN}:${port}/`;

    // With --ca-cert: numbers.
    await install(t, host, ['--service-url', url(good.port), '--ca-cert', join(certs, 'ca.crt')]);
    t.equal(
      host.read(EXTRA_CA),
      readFileSync(join(certs, 'ca.crt'), 'utf8'),
      'the CA is installed in the host',
    );
    t.equal((await host.unit(AGENT, ['User'])).User, AGENT, 'the agent runs as its own user, not root');
    t.match(
      host.read('/etc/random-number-agent/agent.env'),
      `\nSERVICE_CA_FILE="${EXTRA_CA}"\n`,
      'given to the agent as SERVICE_CA_FILE, which its sandbox lets it read',
    );
    t.notMatch(
      host.read('/etc/random-number-agent/agent.env'),
      'NODE_EXTRA_CA_CERTS',
      'not to Node as a whole',
    );
    const lines = await host.linesAtLeast(OUTPUT, 2, 15_000);
    t.ok(
      lines.every((l) => LINE.test(l)),
      `numbers over TLS through nginx (${lines[0]})`,
    );

    // A re-run without --ca-cert keeps the CA: still numbers.
    const before = host.lines(OUTPUT).length;
    const kept = await install(t, host, ['--service-url', url(good.port)]);
    t.match(kept, /keeping the CA installed earlier/, 'install.sh keeps the CA and says so');
    const [first] = await eventually('a poll of the re-run agent', async () => {
      const polls = await pollsOfThisRun(host);
      return polls.length ? polls : undefined;
    });
    t.match(first, { outcome: 'ok', number: Number }, "the re-run agent's first poll got a number");
    // It logs `ok` once the line is written, so the last line stamped before that log line is its own.
    const added = host.lines(OUTPUT).slice(before);
    const own = added.filter((l) => Date.parse(l.split(' ')[0] ?? '') <= Number(first?.time)).at(-1);
    t.equal(own?.split(' ')[1], String(first?.number), `and wrote it to the file (${own})`);
    t.same(
      added.filter((l) => !LINE.test(l)),
      [],
      `the ${added.length} lines written since the re-run began, each in the numbers file's format`,
    );

    // --ca-cert none: no numbers; the log names the certificate problem and the fix.
    await install(t, host, ['--service-url', url(good.port), '--ca-cert', 'none']);
    t.equal(host.read(EXTRA_CA), undefined, '--ca-cert none removed the CA');
    const count = host.lines(OUTPUT).length;
    const untrusted = await eventually('two failed polls', async () => {
      const failed = (await pollsOfThisRun(host)).filter((p) => p.outcome === 'failed');
      return failed.length >= 2 ? failed : undefined;
    });
    t.match(
      untrusted[0],
      { reason: /^TLS: the service's certificate is not signed by a CA the agent trusts; .*--ca-cert/ },
      'the reason names --ca-cert',
    );
    t.equal(host.lines(OUTPUT).length, count, 'nothing written');

    // A certificate for another name, and an expired one: no numbers, each with its reason.
    for (const [server, reason] of [
      [other, /^TLS: the service's certificate is for another name than SERVICE_URL's host/],
      [old, /^TLS: the service's certificate has expired; renew it/],
    ] as const) {
      await install(t, host, ['--service-url', url(server.port), '--ca-cert', join(certs, 'ca.crt')]);
      const n = host.lines(OUTPUT).length;
      const failed = await eventually('two failed polls', async () => {
        const polls = (await pollsOfThisRun(host)).filter((p) => p.outcome === 'failed');
        return polls.length >= 2 ? polls : undefined;
      });
      t.match(failed[0], { reason }, `reason: ${reason}`);
      t.equal(host.lines(OUTPUT).length, n, 'nothing written');
    }
  },
);
