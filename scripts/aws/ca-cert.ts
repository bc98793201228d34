import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../lib/errors.ts';

/**
 * What `--ca-cert` asks of the install: a PEM to trust, `none` to remove the one installed, or
 * nothing (undefined: install.sh keeps whatever an earlier run installed).
 */
export type CaCertChoice = { pem: Buffer; path: string; subjects: string[]; notAfter: string } | 'none';

/**
 * Most a CA file may weigh: it travels inside the install command, which also carries install.sh and
 * must stay under SSM's budget (ssm-command.ts). 16 KB holds a dozen certificates.
 */
export const MAX_CA_BYTES = 16 * 1024;

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

/**
 * Reads and checks `--ca-cert FILE` on the operator's machine, so that a wrong file fails here in one
 * line, not on the instance after the whole delivery: only CERTIFICATE blocks (a private key must never
 * travel through SSM), each parseable, at least one a CA (the server's own certificate is the usual
 * mistake), not expired.
 */
export async function readCaCert(value: string | undefined): Promise<CaCertChoice | undefined> {
  if (value === undefined) return undefined;
  if (value === 'none') return 'none';
  const pem = await readFile(value).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(
      `--ca-cert ${value}: cannot read it (${err.code ?? err.message}); make tls-cert DOMAIN=<name> writes certs/ca.crt`,
      { cause: err },
    );
  });
  if (pem.length > MAX_CA_BYTES) {
    throw new ConfigError(
      `--ca-cert ${value} is ${pem.length} bytes; at most ${MAX_CA_BYTES} fit in the install command: give only the CA(s) that signed the service's certificate`,
    );
  }
  const text = pem.toString('utf8');
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.some((b) => b[1]?.includes('PRIVATE KEY'))) {
    throw new ConfigError(
      `--ca-cert ${value} holds a private key: refusing to send it; give only the CA certificate (certs/ca.crt)`,
    );
  }
  const certs = blocks.filter((b) => b[1] === 'CERTIFICATE');
  if (certs.length === 0 || certs.length !== blocks.length) {
    throw new ConfigError(
      `--ca-cert ${value} is not a PEM file of certificates (-----BEGIN CERTIFICATE-----); give the CA certificate, e.g. certs/ca.crt`,
    );
  }
  const parsed = certs.map((block, index) => {
    try {
      return new X509Certificate(block[0]);
    } catch (err) {
      throw new ConfigError(`--ca-cert ${value}: certificate ${index + 1} does not parse`, { cause: err });
    }
  });
  const cas = parsed.filter((c) => c.ca);
  if (cas.length === 0) {
    throw new ConfigError(
      `--ca-cert ${value} holds no CA certificate (${parsed[0]?.subject.replace(/\n/g, ', ')} is a server's own): give the CA that signed it, e.g. certs/ca.crt`,
    );
  }
  // Not yet valid is as useless to the agent as expired: a CA made on a machine whose clock runs ahead.
  const now = new Date();
  const stale = cas.find((c) => new Date(c.validTo) < now || new Date(c.validFrom) > now);
  if (stale) {
    throw new ConfigError(
      `--ca-cert ${value}: the CA ${stale.subject.replace(/\n/g, ', ')} is valid from ${stale.validFrom} to ${stale.validTo}, not now; make a new one (see make tls-cert) on a machine whose clock is right`,
    );
  }
  return {
    // Only the certificates travel: comments or other text around them stay home.
    pem: Buffer.from(`${certs.map((b) => b[0]).join('\n')}\n`),
    path: value,
    subjects: cas.map((c) => c.subject.replace(/\n/g, ', ')),
    notAfter: cas.map((c) => c.validTo).join(', '),
  };
}

/** One line for the operator: what this install does with the agent's extra CA. */
export function describeCaCert(choice: CaCertChoice | undefined): string {
  if (choice === undefined)
    return 'unchanged (a CA installed by an earlier run is kept; --ca-cert none removes it)';
  if (choice === 'none') return 'removed: the agent trusts the public CAs only';
  return `${choice.path} (${choice.subjects.join('; ')}, until ${choice.notAfter}), trusted in addition to the public CAs, for the service only`;
}
