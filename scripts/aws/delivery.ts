import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { assertPayloadFits, type ShellCommand } from './ssm-command.ts';

/**
 * Delivery of the agent through Run Command alone (no bucket, no SSH): the bundle is gzipped, base64'd
 * and split into parts small enough for SSM's 64 KB limit. Each part command writes one file
 * `<staging>/<sha256>/part-NNN` (write to .tmp then rename, so re-sending a part is harmless); the last
 * command checks that every part is there, reassembles, verifies the bundle's sha256, writes install.sh
 * and the systemd unit beside it and runs install.sh. The tests run these very commands as root with
 * `sh` on a real systemd host (test/helpers/host.ts), as AWS-RunShellScript does.
 */
export const STAGING_ROOT = '/var/lib/random-number-agent/staging';
/** Base64 characters per part command: about 48 KB of payload, well under the budget. */
export const DEFAULT_CHUNK_CHARS = 48_000;
/** Characters per printf line, so that no single script line is huge. */
const LINE_CHARS = 8_000;

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface DeliveryOptions {
  bundle: Buffer;
  installScript: Buffer;
  /** ec2-agent/random-number-agent.service: install.sh installs it with this instance's values. */
  unit: Buffer;
  /** Flags for install.sh after --bundle and --sha256 (--service-url, --schedule, ...). */
  installArgs: string[];
  /**
   * The agent's extra CA (--ca-cert): a PEM written next to the bundle and installed with
   * --extra-ca-certs; `none` removes the installed one; undefined leaves it as it is.
   */
  caCert?: Buffer | 'none';
  chunkChars?: number;
}

export interface Delivery {
  sha256: string;
  bundleBytes: number;
  encodedChars: number;
  /** The part commands in order, then the install command. */
  commands: ShellCommand[];
}

function partName(index: number): string {
  return `part-${String(index + 1).padStart(3, '0')}`;
}

function stagingLines(hash: string): string[] {
  return ['set -eu', 'umask 077', `d=${STAGING_ROOT}/${hash}`, 'mkdir -p "$d"'];
}

function splitEvery(text: string, size: number): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return pieces;
}

export function buildDelivery(options: DeliveryOptions): Delivery {
  const hash = sha256(options.bundle);
  const encoded = gzipSync(options.bundle, { level: 9 }).toString('base64');
  const chunks = splitEvery(encoded, options.chunkChars ?? DEFAULT_CHUNK_CHARS);
  const total = chunks.length;
  const commands: ShellCommand[] = chunks.map((chunk, index) => {
    const part = partName(index);
    return {
      comment: `random-number agent ${hash.slice(0, 12)}: part ${index + 1} of ${total}`,
      timeoutSeconds: 120,
      commands: [
        ...stagingLines(hash),
        '{',
        ...splitEvery(chunk, LINE_CHARS).map((line) => `printf '%s' '${line}'`),
        `} > "$d/${part}.tmp"`,
        `mv -f "$d/${part}.tmp" "$d/${part}"`,
        `echo "staged ${part} of ${total} in $d"`,
      ],
    };
  });
  const parts = chunks.map((_, index) => partName(index));
  const args = ['--bundle', '"$d/ec2-agent.mjs"', '--sha256', hash, ...options.installArgs.map(shellQuote)];
  const { caCert } = options;
  if (caCert === 'none') args.push('--extra-ca-certs', 'none');
  else if (caCert) args.push('--extra-ca-certs', '"$d/extra-ca.pem"');
  commands.push({
    comment: `random-number agent ${hash.slice(0, 12)}: verify and install`,
    timeoutSeconds: 900,
    commands: [
      ...stagingLines(hash),
      `for p in ${parts.join(' ')}; do`,
      `  [ -s "$d/$p" ] || { echo "$p of ${total} is missing from $d: send the part commands first" >&2; exit 1; }`,
      'done',
      `(cd "$d" && cat ${parts.join(' ')}) | base64 -d | gunzip > "$d/ec2-agent.mjs.tmp"`,
      `got=$(sha256sum "$d/ec2-agent.mjs.tmp" | cut -d ' ' -f 1)`,
      `if [ "$got" != ${hash} ]; then`,
      `  echo "bundle checksum mismatch: expected ${hash}, got $got" >&2; rm -f "$d/ec2-agent.mjs.tmp"; exit 1`,
      'fi',
      'mv -f "$d/ec2-agent.mjs.tmp" "$d/ec2-agent.mjs"',
      `printf '%s' '${options.installScript.toString('base64')}' | base64 -d > "$d/install.sh"`,
      `printf '%s' '${options.unit.toString('base64')}' | base64 -d > "$d/random-number-agent.service"`,
      // A PEM is public, but base64 keeps its lines and any odd byte out of the shell's way.
      ...(caCert && caCert !== 'none'
        ? [`printf '%s' '${caCert.toString('base64')}' | base64 -d > "$d/extra-ca.pem"`]
        : []),
      `echo "bundle ${hash} verified (${options.bundle.length} bytes)"`,
      // Older staged versions are no longer needed once this one is verified.
      `find "$(dirname "$d")" -mindepth 1 -maxdepth 1 ! -name ${hash} -exec rm -rf {} +`,
      `bash "$d/install.sh" ${args.join(' ')}`,
    ],
  });
  for (const command of commands) assertPayloadFits(command);
  return { sha256: hash, bundleBytes: options.bundle.length, encodedChars: encoded.length, commands };
}
