import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import t, { type Test } from 'tap';
import { tlsProblem } from '../ec2-agent/poll.ts';
import { MAX_CA_BYTES, readCaCert } from '../scripts/aws/ca-cert.ts';
import { buildDelivery, readAgentFiles } from '../scripts/aws/delivery.ts';
import { MAX_PARAMETERS_BYTES, payloadBytes } from '../scripts/aws/ssm-command.ts';
import { startAwsCli } from './helpers/aws-cli.ts';
import { cliBundle } from './helpers/cli-bundle.ts';
import { DAY_MS, issueWithDates, selfSigned, tlsCert } from './helpers/tls.ts';

// --ca-cert on provision-ec2 and agent-command: the file is checked at home and the PEM travels in the
// install command, within SSM's budget. Installed, kept and removed on the real host:
// test/host-agent-tls.test.ts.

const DOMAIN = 'numbers.example.org';
const AGENT_COMMAND = await cliBundle('agent-command');

/** A CA and a certificate made by the real `make tls-cert` script in a folder of this test. */
function certs(t: Test): { dir: string; ca: string; crt: string; key: string; caKey: string } {
  const dir = t.testdir();
  const r = tlsCert(dir, [DOMAIN]);
  if (r.status !== 0) throw new Error(`tls-cert failed: ${r.stderr}`);
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    crt: join(dir, `${DOMAIN}.crt`),
    key: join(dir, `${DOMAIN}.key`),
  };
}

t.test('--ca-cert FILE is checked at home: a CA passes, the usual mistakes fail in one line', async (t) => {
  const c = certs(t);
  const ok = await readCaCert(c.ca);
  if (ok === undefined || ok === 'none') throw new Error('expected a CA');
  t.match(ok.subjects.join(), /random-number private CA/, 'the CA is read, with its subject');
  t.match(ok.pem.toString(), /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/, 'only PEM');
  t.equal(await readCaCert(undefined), undefined, 'no flag: undefined (keep what is installed)');
  t.equal(await readCaCert('none'), 'none', '`none`: remove');

  const withText = join(c.dir, 'bundle.pem');
  writeFileSync(withText, `# my CA\n${readFileSync(c.ca, 'utf8')}`);
  const stripped = await readCaCert(withText);
  t.equal(
    stripped !== 'none' && stripped?.pem.toString(),
    readFileSync(c.ca, 'utf8'),
    "text around the PEM stays home: exactly the CA's PEM travels",
  );

  const both = join(c.dir, 'both.pem');
  writeFileSync(both, `${readFileSync(c.ca, 'utf8')}${readFileSync(c.caKey, 'utf8')}`);
  const big = join(c.dir, 'big.pem');
  writeFileSync(big, readFileSync(c.ca, 'utf8').repeat(Math.ceil((MAX_CA_BYTES + 1) / 700)));
  const expiredCa = join(c.dir, 'expired-ca.crt');
  issueWithDates({
    caCrt: c.ca,
    caKey: c.caKey,
    key: c.caKey,
    host: 'old.example.org',
    from: new Date(Date.now() - 10 * DAY_MS),
    until: new Date(Date.now() - DAY_MS),
    out: expiredCa,
    ca: true,
  });
  const futureCa = join(c.dir, 'future-ca.crt');
  issueWithDates({
    caCrt: c.ca,
    caKey: c.caKey,
    key: c.caKey,
    host: 'new.example.org',
    from: new Date(Date.now() + DAY_MS),
    until: new Date(Date.now() + 10 * DAY_MS),
    out: futureCa,
    ca: true,
  });
  const cases: [string, RegExp][] = [
    [
      c.crt,
      /holds no CA certificate \(CN=numbers\.example\.org is a server's own\): give the CA that signed it/,
    ],
    [c.key, /holds a private key: refusing to send it/],
    [both, /holds a private key: refusing to send it/],
    [
      join(c.dir, 'missing.crt'),
      /cannot read it \(ENOENT\); make tls-cert DOMAIN=<name> writes certs\/ca\.crt/,
    ],
    [join(c.dir), /cannot read it \(EISDIR\)/],
    [big, new RegExp(`at most ${MAX_CA_BYTES} fit in the install command`)],
    [expiredCa, /the CA .*old\.example\.org is valid from .* to .*, not now; make a new one/],
    [
      futureCa,
      /the CA .*new\.example\.org is valid from .* to .*, not now; make a new one .* clock is right/,
    ],
  ];
  for (const [file, message] of cases) {
    await t.rejects(readCaCert(file), { name: 'ConfigError', message }, `${basename(file)}: refused`);
  }
  const notPem = join(c.dir, 'x.txt');
  writeFileSync(notPem, 'hello');
  await t.rejects(
    readCaCert(notPem),
    { message: /is not a PEM file of certificates/ },
    'plain text: refused',
  );
});

t.test('the largest CA file accepted still fits the install command', async (t) => {
  const c = certs(t);
  // Distinct real CA certificates up to the size limit: the size is what counts, not the kind.
  const pems: string[] = [];
  for (let i = 0; ; i++) {
    const cert = join(c.dir, `ca-${i}.pem`);
    selfSigned({ cert, key: '/dev/null', subject: `/CN=ca ${i}`, days: '30' });
    const pem = readFileSync(cert, 'utf8');
    if ([...pems, pem].join('').length > MAX_CA_BYTES) break;
    pems.push(pem);
  }
  const file = join(c.dir, 'many.pem');
  writeFileSync(file, pems.join(''));
  const ca = await readCaCert(file);
  if (ca === undefined || ca === 'none') throw new Error('expected CAs');
  t.equal(ca.subjects.length, pems.length, `${pems.length} CA certificates read`);
  const delivery = buildDelivery({
    ...(await readAgentFiles()),
    settings: { SERVICE_URL: `https://${DOMAIN}/`, SCHEDULE: '* * * * *' },
    caCert: ca,
  });
  const install = delivery.commands.at(-1);
  if (!install) throw new Error('buildDelivery made no commands');
  t.match(install.comment, /: verify and install$/, 'the last command is the install command');
  t.match(
    install.commands.join('\n'),
    ca.pem.toString('base64'),
    `all ${pems.length} CAs ride in it, base64`,
  );
  const bytes = payloadBytes(install.commands);
  t.ok(
    bytes <= MAX_PARAMETERS_BYTES,
    `${ca.pem.length} bytes of CA: install command ${bytes} of ${MAX_PARAMETERS_BYTES}`,
  );
});

t.test('agent-command --ca-cert writes the PEM into the install JSON, and refuses a key', async (t) => {
  const c = certs(t);
  const run = (args: string[]) =>
    spawnSync(process.execPath, [AGENT_COMMAND, '--service-url', `https://${DOMAIN}/`, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_NO_WARNINGS: '1' },
      encoding: 'utf8',
    });
  const out = join(c.dir, 'out');
  const ok = run(['--ca-cert', c.ca, '--out', out]);
  t.equal(ok.status, 0, `exits 0 (${ok.stderr.trim()})`);
  t.match(
    ok.stdout,
    /agent CA: .*ca\.crt \(.*random-number private CA.*\), trusted in addition to the public CAs/,
    'says what it does with the CA',
  );
  const files = readdirSync(out).sort();
  const install = JSON.parse(readFileSync(join(out, files.at(-1) ?? ''), 'utf8'));
  const script: string = install.Parameters.commands.join('\n');
  t.match(script, readFileSync(c.ca).toString('base64'), 'the CA travels base64 in the install command');
  t.match(script, '--extra-ca-certs "$d/extra-ca.pem"', 'and install.sh is told to install it');

  const none = run(['--ca-cert', 'none', '--out', out]);
  t.equal(none.status, 0, '--ca-cert none exits 0');
  const last = JSON.parse(readFileSync(join(out, readdirSync(out).sort().at(-1) ?? ''), 'utf8'));
  t.match(last.Parameters.commands.join('\n'), '--extra-ca-certs none', 'install.sh is told to remove it');

  const key = run(['--ca-cert', c.key, '--out', join(c.dir, 'never')]);
  t.equal(key.status, 2, 'a private key: exit 2');
  t.match(key.stderr, /holds a private key: refusing to send it/, 'one clear line');
  t.notMatch(key.stderr, /\n\s+at /, 'no stack trace');
  t.notOk(existsSync(join(c.dir, 'never')), 'nothing written');
});

t.test('provision-ec2 --ca-cert: checked before AWS is touched; the plan says what happens', async (t) => {
  const c = certs(t);
  const { cli } = await startAwsCli(t);
  const dryRun = (...more: string[]) =>
    cli('provision-ec2', ['--service-url', `https://${DOMAIN}/`, '--dry-run', ...more]);
  const bad = await dryRun('--ca-cert', c.crt);
  t.equal(bad.code, 2, 'a server certificate instead of the CA: exit 2');
  t.match(bad.stderr, /--ca-cert .*holds no CA certificate/, 'says so');
  const dry = await dryRun('--ca-cert', c.ca);
  t.equal(dry.code, 0, `--dry-run with a CA exits 0 (${dry.stderr})`);
  t.match(dry.stdout, /agent CA: .*ca\.crt .*trusted in addition to the public CAs/, 'the plan names the CA');
  const keep = await dryRun();
  t.match(
    keep.stdout,
    /agent CA: unchanged \(a CA installed by an earlier run is kept; --ca-cert none removes it\)/,
    'without the flag: kept',
  );
});

t.test('every certificate failure names its fix; other network errors are not called TLS', async (t) => {
  // An expired certificate, one not valid yet and one for another name are served by nginx to the real
  // agent in test/agent-tls-nginx.test.ts; here, the rest: every way of being untrusted, the general hint
  // for other certificate codes, and what is not TLS.
  for (const code of [
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  ]) {
    t.match(
      tlsProblem(code),
      /not signed by a CA the agent trusts; .*--ca-cert certs\/ca\.crt/,
      `${code}: --ca-cert`,
    );
  }
  t.match(
    tlsProblem('CERT_REVOKED'),
    /certificate verification failed; .*--ca-cert/,
    'other certificate codes: a general hint',
  );
  t.match(
    tlsProblem('UNSPECIFIED: permitted subtree violation'),
    /certificate verification failed; .*--ca-cert/,
    'a verification error Node has no name for (UNSPECIFIED, its message after it): the general hint',
  );
  for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'UND_ERR_SOCKET']) {
    t.equal(tlsProblem(code), undefined, `${code}: not a TLS problem (retried as a network error)`);
  }
});
