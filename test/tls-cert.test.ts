import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { binWith, ROOT } from './helpers/kustomize.ts';
import {
  DAY_MS,
  notAfter,
  openssl,
  reissue,
  selfSigned,
  serialOf,
  tlsCert,
  verifies,
} from './helpers/tls.ts';

// scripts/tls-cert.sh with the real openssl, writing into a test folder (CERTS_DIR) so a user's own
// certs/ is never touched. Near-expiry is real: a certificate openssl issued for 10 days.

const DOMAIN = 'numbers.example.org';
const mode = (path: string) => statSync(path).mode & 0o777;
/** A DNS name of `length` characters under example.org: labels of 63 x's, the last one shorter. */
const longName = (length: number) =>
  `${`${'x'.repeat(63)}.`.repeat(4).slice(0, length - '.example.org'.length)}.example.org`;

t.test('makes a CA and a certificate that verifies for DOMAIN only', async (t) => {
  const dir = t.testdir();
  const r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 0, `succeeds${r.stderr ? `: ${r.stderr}` : ''}`);
  const ca = join(dir, 'ca.crt');
  const crt = join(dir, `${DOMAIN}.crt`);
  for (const [file, expected] of [
    ['ca.crt', 0o644],
    ['ca.key', 0o600],
    [`${DOMAIN}.crt`, 0o644],
    [`${DOMAIN}.key`, 0o600],
  ] as const) {
    t.equal(mode(join(dir, file)), expected, `${file} has mode ${expected.toString(8)}`);
  }
  t.ok(verifies(ca, crt, DOMAIN).ok, 'openssl verify -verify_hostname DOMAIN: OK');
  const other = verifies(ca, crt, 'other.example.org');
  t.notOk(other.ok, 'for another name it does not verify');
  t.match(other.output, /hostname mismatch/, 'because of the host name');
  t.notOk(verifies(ca, crt, `x.${DOMAIN}`).ok, 'nor for a subdomain (no wildcard)');

  const text = openssl(['x509', '-in', crt, '-noout', '-text']);
  t.match(text, /DNS:numbers\.example\.org/, 'subjectAltName DNS:DOMAIN');
  t.match(text, /TLS Web Server Authentication/, 'extendedKeyUsage serverAuth');
  t.match(text, /CA:FALSE/, 'not a CA');
  t.match(
    text,
    /X509v3 Key Usage: critical\s+Digital Signature\n/,
    'keyUsage digitalSignature alone, critical (the key signs TLS handshakes, nothing else)',
  );
  const days = (notAfter(crt).getTime() - Date.now()) / DAY_MS;
  t.ok(days > 390 && days <= 397, `valid at most 397 days (${days.toFixed(1)})`);
  const caDays = (notAfter(ca).getTime() - Date.now()) / DAY_MS;
  t.ok(caDays > 3649 && caDays <= 3650, `the CA is valid 10 years, 3650 days (${caDays.toFixed(1)})`);
  const caText = openssl(['x509', '-in', ca, '-noout', '-text']);
  t.match(caText, /CA:TRUE, pathlen:0/, 'the CA signs leaves only');
  t.match(
    caText,
    /X509v3 Name Constraints: critical\s+Permitted:\s+DNS:numbers\.example\.org\n/,
    'and only for DOMAIN: a critical name constraint, permitted DNS:DOMAIN',
  );

  t.match(r.stdout, /wrote: .*ca\.key \(0600\)/, 'says what it wrote');
  t.match(
    r.stdout,
    /DOMAIN=numbers\.example\.org TLS=own make deploy-knative/,
    'prints the next command for the cluster',
  );
  t.match(
    r.stdout,
    /provision-ec2 -- --service-url https:\/\/numbers\.example\.org\/ --ca-cert \S*ca\.crt/,
    'and for the agent',
  );
  t.notMatch(r.stdout + r.stderr, /PRIVATE KEY/, 'no key is printed');
});

t.test('the CA cannot vouch for another name, even with its own key', async (t) => {
  const dir = t.testdir();
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'make tls-cert');
  const ca = join(dir, 'ca.crt');
  // What someone holding ca.key could issue: certificates for other names, signed by openssl directly.
  for (const host of ['other.example.org', 'example.org', 'xnumbers.example.org', 'amazonaws.com']) {
    const crt = join(dir, `${host}.crt`);
    openssl([
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-out',
      join(dir, `${host}.key`),
    ]);
    reissue(dir, host, -1, 30, crt);
    const r = verifies(ca, crt, host);
    t.notOk(r.ok, `a certificate for ${host} from the CA does not verify`);
    t.match(r.output, /permitted subtree violation/, `${host}: because of the name constraint`);
  }
  t.ok(verifies(ca, join(dir, `${DOMAIN}.crt`), DOMAIN).ok, 'the certificate for DOMAIN verifies');
});

t.test('a re-run keeps everything; a subdomain reuses the CA; another domain gets its own', async (t) => {
  const dir = t.testdir();
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'first run');
  const files = ['ca.crt', 'ca.key', `${DOMAIN}.crt`, `${DOMAIN}.key`].map((f) => join(dir, f));
  const before = files.map((f) => [readFileSync(f, 'utf8'), statSync(f).mtimeMs]);
  const again = tlsCert(dir, [], { DOMAIN });
  t.equal(again.status, 0, 'second run (DOMAIN from the environment) succeeds');
  t.same(
    files.map((f) => [readFileSync(f, 'utf8'), statSync(f).mtimeMs]),
    before,
    'no file changed, not even its mtime',
  );
  t.notMatch(again.stdout, /wrote:/, 'nothing written');
  t.match(again.stdout, /kept: .*numbers\.example\.org\.crt/, 'says it kept the certificate');

  const caBefore = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const sub = `api.${DOMAIN}`;
  t.equal(tlsCert(dir, [sub]).status, 0, 'a subdomain of DOMAIN');
  t.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), caBefore, 'same CA');
  t.ok(
    verifies(join(dir, 'ca.crt'), join(dir, `${sub}.crt`), sub).ok,
    'the new certificate verifies against it',
  );

  // A name that merely ends with DOMAIN is another domain, not a subdomain: the CA's name constraint
  // would make its certificate fail to verify, so the script must not issue one from this CA.
  const lookalike = `x${DOMAIN}`;
  const near = tlsCert(dir, [lookalike]);
  t.equal(near.status, 1, `${lookalike} (DOMAIN's text at its end, but not under it): refused`);
  t.match(
    near.stderr,
    /^tls-cert: \S+ca\.crt may vouch for numbers\.example\.org; xnumbers\.example\.org needs a CA for itself alone: /,
    "naming the CA's one domain and the name asked for",
  );
  t.notOk(existsSync(join(dir, `${lookalike}.crt`)), `no certificate written for ${lookalike}`);

  const r = tlsCert(dir, ['other.example.net']);
  t.equal(r.status, 1, 'another domain with this CA: refused');
  t.match(
    r.stderr,
    /^tls-cert: \S+ca\.crt may vouch for numbers\.example\.org; other\.example\.net needs a CA for itself alone: move ca\.crt and ca\.key away \(or set CERTS_DIR=certs\/other\.example\.net\), run again, then give the agent the new CA with --ca-cert\n$/,
    'in one line saying how to give it a CA of its own',
  );
  t.notOk(existsSync(join(dir, 'other.example.net.crt')), 'no certificate written');
  t.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), caBefore, 'the CA untouched');

  const own = join(dir, 'other.example.net');
  const mine = tlsCert(own, ['other.example.net']);
  t.equal(mine.status, 0, 'with CERTS_DIR of its own: succeeds');
  t.match(
    mine.stdout,
    `  CERTS_DIR=${own} DOMAIN=other.example.net TLS=own make deploy-knative`,
    'and its next step deploys from that folder, not from certs/',
  );
  t.ok(
    verifies(join(own, 'ca.crt'), join(own, 'other.example.net.crt'), 'other.example.net').ok,
    'its certificate verifies against its own CA',
  );
});

/** A self-signed CA in dir/ca.crt and dir/ca.key, made by hand as an older tls-cert or a user would. */
const makeCa = (dir: string, days: string, subject: string, extra: string[] = []) =>
  selfSigned({
    cert: join(dir, 'ca.crt'),
    key: join(dir, 'ca.key'),
    subject,
    days,
    newkey: ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    extra,
  });

t.test('a CA made before CAs carried a name constraint is not used', async (t) => {
  const dir = t.testdir();
  // The CA as tls-cert made it before: the same extensions but the name constraint.
  makeCa(dir, '3650', '/O=random-number/CN=random-number private CA', [
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const before = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 1, 'fails');
  t.match(
    r.stderr,
    /^tls-cert: \S+ca\.crt may vouch for any name \(it has no name constraint\); numbers\.example\.org needs a CA for itself alone: move ca\.crt and ca\.key away .*--ca-cert\n$/,
    'in one line saying how to replace it',
  );
  t.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), before, 'the old CA is left as it is');
  t.notOk(existsSync(join(dir, `${DOMAIN}.crt`)), 'and nothing is issued from it');

  execFileSync('mv', [join(dir, 'ca.crt'), join(dir, 'ca.crt.old')]);
  execFileSync('mv', [join(dir, 'ca.key'), join(dir, 'ca.key.old')]);
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'moved away: a new CA is made');
  t.match(
    openssl(['x509', '-in', join(dir, 'ca.crt'), '-noout', '-ext', 'nameConstraints']),
    /DNS:numbers\.example\.org/,
    'with the constraint',
  );
});

t.test('renews a certificate that expires within 30 days, and only then', async (t) => {
  const dir = t.testdir();
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'first run');
  const crt = join(dir, `${DOMAIN}.crt`);
  const ca = { caCrt: join(dir, 'ca.crt') };
  const now = Date.now();

  // 31 days left: kept.
  reissue(dir, DOMAIN, -1, 31);
  const serial31 = serialOf(crt);
  let r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 0, '31 days left: succeeds');
  t.equal(serialOf(crt), serial31, '31 days left: the certificate is kept');

  // Just inside the 30-day window (29.5 days left, so a window cut to 29 days would keep it): renewed.
  reissue(dir, DOMAIN, -1, 29.5);
  const serial29 = serialOf(crt);
  r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 0, '29.5 days left: succeeds');
  t.not(serialOf(crt), serial29, '29.5 days left: a new certificate was issued');
  t.match(r.stderr, /expires within 30 days/, '29.5 days left: and says why');

  // 10 days left: a real short-lived certificate from the same CA and key.
  reissue(dir, DOMAIN, -1, 10);
  const serial10 = serialOf(crt);
  t.ok(verifies(ca.caCrt, crt, DOMAIN).ok, 'the short-lived certificate is valid today');
  r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 0, '10 days left: succeeds');
  t.not(serialOf(crt), serial10, 'a new certificate was issued');
  t.match(r.stderr, /expires within 30 days/, 'and says why');
  t.ok(notAfter(crt).getTime() - now > 390 * DAY_MS, 'for the full period again');
  t.ok(verifies(ca.caCrt, crt, DOMAIN).ok, 'and it verifies');
  t.equal(mode(join(dir, `${DOMAIN}.key`)), 0o600, 'the new key is 0600');

  // Already expired: renewed as well.
  reissue(dir, DOMAIN, -20, -1);
  t.notOk(verifies(ca.caCrt, crt, DOMAIN).ok, 'the expired certificate does not verify');
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'expired: succeeds');
  t.ok(verifies(ca.caCrt, crt, DOMAIN).ok, 'expired: replaced by one that verifies');
});

t.test('a certificate that no longer fits its CA or key is reissued', async (t) => {
  const dir = t.testdir();
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'first run');
  const crt = join(dir, `${DOMAIN}.crt`);
  // A certificate for the right name from a different CA (for instance copied from elsewhere).
  const other = join(dir, 'elsewhere');
  t.equal(tlsCert(other, [DOMAIN]).status, 0, 'a second, unrelated CA');
  execFileSync('cp', [join(other, `${DOMAIN}.crt`), crt]);
  const r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 0, 'succeeds');
  t.match(r.stderr, /does not verify for numbers\.example\.org against/, 'says why it reissues');
  t.ok(verifies(join(dir, 'ca.crt'), crt, DOMAIN).ok, 'the new one verifies against this CA');
});

t.test('a key that no longer belongs to the certificate makes a re-run reissue both', async (t) => {
  const dir = t.testdir();
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'first run');
  const crt = join(dir, `${DOMAIN}.crt`);
  const key = join(dir, `${DOMAIN}.key`);
  const serial = serialOf(crt);
  // Another P-256 key in DOMAIN.key: the certificate still verifies for DOMAIN, only the pair is broken.
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  t.not(
    openssl(['x509', '-in', crt, '-noout', '-pubkey']),
    openssl(['pkey', '-in', key, '-pubout']),
    'before: the certificate is not for the key beside it',
  );
  const r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 0, 'succeeds');
  t.match(
    r.stderr,
    /^tls-cert: issuing a certificate for numbers\.example\.org: it does not match \S+numbers\.example\.org\.key\n$/,
    'says why it reissues',
  );
  t.not(serialOf(crt), serial, 'a new certificate');
  t.equal(
    openssl(['x509', '-in', crt, '-noout', '-pubkey']),
    openssl(['pkey', '-in', key, '-pubout']),
    'after: DOMAIN.key is the key of DOMAIN.crt',
  );
  t.ok(verifies(join(dir, 'ca.crt'), crt, DOMAIN).ok, 'and it verifies for DOMAIN');
  t.equal(mode(key), 0o600, 'the key is 0600');
});

t.test('a CA close to expiry is not silently replaced', async (t) => {
  const dir = t.testdir();
  makeCa(dir, '5', '/CN=old CA');
  const r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 1, 'fails');
  t.match(
    r.stderr,
    /^tls-cert: .*ca\.crt expires within 30 days .*move ca\.crt and ca\.key away/,
    'says what to do',
  );
  t.match(r.stderr, /--ca-cert/, 'including re-giving the agent the CA');
});

t.test('bad input: one clear line each', async (t) => {
  const dir = t.testdir();
  const cases: [string[], Record<string, string>, RegExp][] = [
    [[], {}, /^tls-cert: DOMAIN is required: make tls-cert DOMAIN=/],
    [['https://numbers.example.org/'], {}, /is not a lower-case DNS name/],
    [['Numbers.Example.org'], {}, /is not a lower-case DNS name/],
    [['localhost'], {}, /is not a lower-case DNS name/],
    [['*.example.org'], {}, /no scheme, port, path or wildcard/],
    [[`${'a'.repeat(64)}.example.org`], {}, /labels of at most 63 characters/],
    [[longName(252)], {}, /251 in all so that DOMAIN\.key fits a file name/],
    [[DOMAIN], { PATH: binWith(t, ['bash', 'dirname', 'mkdir']) }, /^tls-cert: openssl is not installed/],
  ];
  for (const [args, env, expected] of cases) {
    const r = tlsCert(dir, args, env);
    t.equal(r.status, 1, `${JSON.stringify(args)}: fails`);
    t.match(r.stderr, expected, `${JSON.stringify(args)}: ${expected}`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${JSON.stringify(args)}: one line`);
  }
  t.same(execFileSync('ls', ['-A', dir], { encoding: 'utf8' }), '', 'nothing written on bad input');
});

t.test("a certificate of the user's own for DOMAIN is never replaced", async (t) => {
  const dir = t.testdir();
  const crt = join(dir, `${DOMAIN}.crt`);
  const key = join(dir, `${DOMAIN}.key`);
  // As a user brings one for TLS=own: from a CA of their own (here self-signed), any validity.
  selfSigned({ cert: crt, key, subject: `/O=Example Ltd/CN=${DOMAIN}`, days: '5' });
  const mine = [readFileSync(crt), readFileSync(key)];
  const r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 1, 'refused');
  t.match(
    r.stderr,
    /^tls-cert: \S+numbers\.example\.org\.crt was not issued by this script \(issuer: CN=numbers\.example\.org,O=Example Ltd\): it may be your own, so it and its key are kept; move both away, or use another CERTS_DIR, and run again\n$/,
    'in one line: what is there, why it is kept, what to do',
  );
  t.same([readFileSync(crt), readFileSync(key)], mine, 'both files are byte for byte as they were');
  t.same(readdirSync(dir).sort(), [`${DOMAIN}.crt`, `${DOMAIN}.key`], 'and nothing else was made (no CA)');

  writeFileSync(crt, 'not a certificate\n');
  const unreadable = tlsCert(dir, [DOMAIN]);
  t.equal(unreadable.status, 1, 'a file openssl cannot read as a certificate: refused too');
  t.match(unreadable.stderr, /\(issuer: none openssl can read\)/, 'saying so');
  t.equal(readFileSync(crt, 'utf8'), 'not a certificate\n', 'and left as it is');

  mkdirSync(join(dir, 'mine'));
  for (const f of [crt, key]) renameSync(f, join(dir, 'mine', f.slice(dir.length + 1)));
  t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'moved away: the script issues its own');
});

t.test('long names work up to 251 characters: the CN only where X.509 allows it', async (t) => {
  const subject = (cert: string) =>
    openssl(['x509', '-in', cert, '-noout', '-subject', '-nameopt', 'RFC2253']);
  // 35 and 36: either side of what the CA's CN holds whole; 64 and 65: of the server's CN; 251: the most.
  const root = t.testdir();
  for (const length of [35, 36, 64, 65, 251]) {
    const name = longName(length);
    t.equal(name.length, length, `a name of ${length} characters`);
    const dir = join(root, String(length));
    const r = tlsCert(dir, [name]);
    if (!t.equal(r.status, 0, `${length}: succeeds${r.stderr ? `: ${r.stderr}` : ''}`)) continue;
    const ca = join(dir, 'ca.crt');
    const crt = join(dir, `${name}.crt`);
    t.ok(verifies(ca, crt, name).ok, `${length}: the certificate verifies for the name`);
    // The CA's CN (at most 64) names the domain, or its end when the whole does not fit.
    t.equal(
      /CN=([^,]*)/.exec(subject(ca))?.[1],
      `random-number private CA for ${length <= 35 ? name : `..${name.slice(-33)}`}`,
      `${length}: the CA's CN`,
    );
    t.match(
      openssl(['x509', '-in', ca, '-noout', '-ext', 'nameConstraints']),
      new RegExp(`Permitted:\\s+DNS:${name.replaceAll('.', '\\.')}\n`),
      `${length}: the name constraint names it whole`,
    );
    t.match(
      openssl(['x509', '-in', crt, '-noout', '-ext', 'subjectAltName']),
      `DNS:${name}\n`,
      `${length}: SAN`,
    );
    t.equal(
      subject(crt).trim(),
      length <= 64 ? `subject=CN=${name}` : 'subject=O=random-number',
      `${length}: the CN ${length <= 64 ? 'is the name' : 'left out (over 64)'}`,
    );
    const again = tlsCert(dir, [name]);
    t.equal(again.status, 0, `${length}: a re-run succeeds`);
    t.notMatch(again.stdout, /wrote:/, `${length}: and keeps everything`);
  }
});

t.test("a CA openssl cannot make leaves nothing behind and shows openssl's reason", async (t) => {
  const dir = t.testdir({ 'openssl.cnf': '[req]\nx509_extensions = no_such_section\n' });
  const certs = join(dir, 'certs');
  // A real openssl failing at the CA certificate, after it made the CA's key.
  const r = tlsCert(certs, [DOMAIN], { OPENSSL_CONF: join(dir, 'openssl.cnf') });
  t.equal(r.status, 1, 'fails');
  t.match(
    r.stderr,
    /^tls-cert: openssl could not create the CA certificate: .*no_such_section.*\n$/,
    "in one line ending with openssl's reason",
  );
  t.same(readdirSync(certs), [], 'no ca.key without ca.crt, no temporary folder');
  const next = tlsCert(certs, [DOMAIN]);
  t.equal(
    next.status,
    0,
    `the next run makes the CA${next.stderr.includes('only one') ? `: ${next.stderr}` : ''}`,
  );
});

t.test('the next commands paste whole when CERTS_DIR has spaces', async (t) => {
  const dir = join(t.testdir(), 'my certs');
  const r = tlsCert(dir, [DOMAIN]);
  t.equal(r.status, 0, 'succeeds');
  // As a shell reads them when pasted: split into words, quotes removed (the comment dropped).
  const words = (prefix: string) => {
    const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(prefix)) ?? '';
    return execFileSync('sh', ['-c', `printf '%s\\n' ${line}`], { encoding: 'utf8' })
      .trimEnd()
      .split('\n');
  };
  t.same(
    words('CERTS_DIR='),
    [`CERTS_DIR=${dir}`, `DOMAIN=${DOMAIN}`, 'TLS=own', 'make', 'deploy-knative'],
    'deploy-knative gets the folder as one word',
  );
  const agent = words('npm run provision-ec2');
  // Under the checkout, the path is printed relative to it, as `make` runs there.
  t.equal(agent.at(-1), relative(ROOT, join(dir, 'ca.crt')), '--ca-cert gets the CA file as one word');
  t.equal(agent.at(-2), '--ca-cert', 'right after the flag');
});

t.test('make tls-cert DOMAIN=... writes a CA and a certificate for DOMAIN into CERTS_DIR', async (t) => {
  const dir = t.testdir();
  const certs = join(ROOT, 'certs');
  const listCerts = () => (existsSync(certs) ? readdirSync(certs).sort() : []);
  const before = listCerts();
  const r = spawnSync('make', ['-s', 'tls-cert', `DOMAIN=${DOMAIN}`], {
    // stdin not a socket: otherwise make's bash thinks a remote shell started it and reads bashrc.
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CERTS_DIR: dir },
    timeout: 60_000,
  });
  t.equal(r.status, 0, `make tls-cert exits 0${r.stderr ? `: ${r.stderr}` : ''}`);
  const crt = join(dir, `${DOMAIN}.crt`);
  const key = join(dir, `${DOMAIN}.key`);
  t.same(listCerts(), before, "the checkout's certs/ is left as it was");
  if (!t.ok(existsSync(crt) && existsSync(key), 'DOMAIN.crt and DOMAIN.key are in CERTS_DIR')) return;
  t.ok(
    verifies(join(dir, 'ca.crt'), crt, DOMAIN).ok,
    'openssl: the certificate verifies for DOMAIN against ca.crt',
  );
  t.equal(
    openssl(['pkey', '-in', key, '-pubout']),
    openssl(['x509', '-in', crt, '-noout', '-pubkey']),
    'openssl: DOMAIN.key is the key of DOMAIN.crt',
  );
  t.equal(mode(key), 0o600, 'the key is 0600');
  t.match(r.stdout, `wrote: ${join(dir, 'ca.crt')}`, 'it says it wrote into CERTS_DIR');
});

t.test('certs/ is git-ignored', async (t) => {
  const ignored = execFileSync('git', ['check-ignore', 'certs/ca.key', `certs/${DOMAIN}.key`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  t.match(ignored, /certs\/ca\.key/, 'certs/ca.key is ignored by git');
  t.match(ignored, /certs\/numbers\.example\.org\.key/, 'and so is the server key');
});
