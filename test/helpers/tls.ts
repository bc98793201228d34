import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT } from './kustomize.ts';

export const TLS_CERT_SCRIPT = resolve(ROOT, 'scripts/tls-cert.sh');

/** Runs scripts/tls-cert.sh writing into `certsDir`, with exactly the given extra environment. */
export function tlsCert(certsDir: string, args: string[], env: Record<string, string | undefined> = {}) {
  const r = spawnSync(TLS_CERT_SCRIPT, args, {
    // stdin not a socket: otherwise bash thinks a remote shell started it and reads ~/.bashrc.
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CERTS_DIR: certsDir, ...env } as NodeJS.ProcessEnv,
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface SelfSignedOptions {
  cert: string;
  key: string;
  subject: string;
  days?: string;
  /** openssl's -newkey and its options: RSA 2048 unless given. */
  newkey?: string[];
  /** More options for `openssl req`: -addext and the like. */
  extra?: string[];
}

/** A self-signed certificate and its key, made with `openssl req -x509` as a user would. */
export function selfSigned(o: SelfSignedOptions): void {
  const { days = '1', newkey = ['rsa:2048'], extra = [] } = o;
  const [subject, keyout, out] = [
    ['-subj', o.subject],
    ['-keyout', o.key],
    ['-out', o.cert],
  ];
  openssl([
    'req',
    '-x509',
    '-newkey',
    ...newkey,
    '-nodes',
    '-days',
    days,
    ...subject,
    ...extra,
    ...keyout,
    ...out,
  ]);
}

/** A throwaway self-signed CA certificate, `<dir>/ca.pem` (its key beside it); returns its path. */
export function selfSignedCa(dir: string): string {
  const cert = join(dir, 'ca.pem');
  const extra = ['-addext', 'basicConstraints=critical,CA:TRUE'];
  selfSigned({ cert, key: join(dir, 'ca.key'), subject: '/CN=random-number test CA', extra });
  return cert;
}

/** `openssl verify -verify_hostname`: whether `cert` verifies against `ca` for `host`. */
export function verifies(ca: string, cert: string, host: string): { ok: boolean; output: string } {
  const r = spawnSync(
    'openssl',
    ['verify', '-CAfile', ca, '-verify_hostname', host, '-purpose', 'sslserver', cert],
    { encoding: 'utf8' },
  );
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
}

/** notAfter of a certificate as a Date. */
export function notAfter(cert: string): Date {
  const line = openssl(['x509', '-in', cert, '-noout', '-enddate']).trim();
  return new Date(line.replace(/^notAfter=/, ''));
}

export function serialOf(cert: string): string {
  return openssl(['x509', '-in', cert, '-noout', '-serial']).trim();
}

/** `YYYYMMDDHHMMSSZ`, the form `openssl ca -startdate/-enddate` takes. */
const asn1Time = (d: Date) => `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;

/**
 * A real certificate for `host` with `key`, signed by the CA with openssl, valid exactly from `from`
 * to `until`: short-lived or already expired, as a test needs. `openssl ca` is the one openssl 3.0
 * command that takes both dates.
 */
export function issueWithDates(options: {
  caCrt: string;
  caKey: string;
  key: string;
  host: string;
  from: Date;
  until: Date;
  out: string;
  /** A CA certificate rather than a server's. */
  ca?: boolean;
}): void {
  const dir = mkdtempSync(join(tmpdir(), 'rn-ca-'));
  try {
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(
      join(dir, 'ca.cnf'),
      [
        '[ca]',
        'default_ca = test_ca',
        '[test_ca]',
        `database = ${join(dir, 'index.txt')}`,
        `new_certs_dir = ${dir}`,
        'rand_serial = yes',
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        '[any]',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'ext.cnf'),
      options.ca
        ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
        : `basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${options.host}\n`,
    );
    const csr = join(dir, 'req.csr');
    openssl(['req', '-new', '-key', options.key, '-subj', `/CN=${options.host}`, '-out', csr]);
    openssl([
      'ca',
      '-batch',
      '-notext',
      '-config',
      join(dir, 'ca.cnf'),
      '-cert',
      options.caCrt,
      '-keyfile',
      options.caKey,
      '-in',
      csr,
      '-out',
      options.out,
      '-startdate',
      asn1Time(options.from),
      '-enddate',
      asn1Time(options.until),
      '-extfile',
      join(dir, 'ext.cnf'),
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const DAY_MS = 24 * 3600 * 1000;

/**
 * Issues a certificate for `host` from the CA `make tls-cert` left in `certs`, with its key, valid from
 * `fromDays` to `untilDays` days from now (negative: in the past); written to `out`, by default where
 * `make tls-cert` keeps it.
 */
export function reissue(
  certs: string,
  host: string,
  fromDays: number,
  untilDays: number,
  out = join(certs, `${host}.crt`),
): void {
  const now = Date.now();
  issueWithDates({
    caCrt: join(certs, 'ca.crt'),
    caKey: join(certs, 'ca.key'),
    key: join(certs, `${host}.key`),
    host,
    from: new Date(now + fromDays * DAY_MS),
    until: new Date(now + untilDays * DAY_MS),
    out,
  });
}
