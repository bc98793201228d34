import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { flagName, type SettingName } from '../../ec2-agent/config.ts';
import { ConfigError } from '../../lib/errors.ts';
import type { CaCertChoice } from './ca-cert.ts';
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
/** Characters per printf line, so that no single script line is huge. */
const LINE_CHARS = 8_000;

export const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** The built agent bundle, install.sh and the systemd unit, read from the checkout. */
export async function readAgentFiles(paths: { bundlePath?: string; installScriptPath?: string } = {}) {
  const read = (path: string, help: string) =>
    readFile(path).catch((cause: unknown) => {
      throw new ConfigError(`cannot read ${path}: ${help}`, { cause });
    });
  const checkout = 'run from the root of the random-number checkout';
  const build = 'build the agent first with `npm run build` (or `make build`)';
  return {
    bundle: await read(paths.bundlePath ?? 'dist/ec2-agent.mjs', build),
    installScript: await read(paths.installScriptPath ?? 'ec2-agent/install.sh', checkout),
    unit: await read('ec2-agent/random-number-agent.service', checkout),
  };
}

interface DeliveryOptions {
  bundle: Buffer;
  installScript: Buffer;
  /** ec2-agent/random-number-agent.service: install.sh installs it with this instance's values. */
  unit: Buffer;
  /** What install.sh is told besides --bundle and --sha256: the agent's settings (config.ts), as flags. */
  settings: Partial<Record<SettingName, string | number>>;
  tokenParameter?: string | undefined;
  /** Where the agent reads the token parameter. */
  region?: string | undefined;
  /**
   * The agent's extra CA (--ca-cert): a PEM written next to the bundle and installed with
   * --extra-ca-certs; `none` removes the installed one; undefined leaves it as it is.
   */
  caCert?: CaCertChoice;
  /** Base64 characters per part command: about 48 KB of payload by default, well under the budget. */
  chunkChars?: number;
}

const splitEvery = (text: string, size: number) => text.match(new RegExp(`.{1,${size}}`, 'gs')) ?? [];

/** The part commands in order, then the install command; each checked against the payload budget. */
export function buildDelivery(options: DeliveryOptions) {
  const { bundle, caCert } = options;
  const hash = sha256(bundle);
  const label = `random-number agent ${hash.slice(0, 12)}`;
  const encoded = gzipSync(bundle, { level: 9 }).toString('base64');
  const chunks = splitEvery(encoded, options.chunkChars ?? 48_000);
  const total = chunks.length;
  const parts = chunks.map((_, index) => `part-${String(index + 1).padStart(3, '0')}`);
  const staging = ['set -eu', 'umask 077', `d=${STAGING_ROOT}/${hash}`, 'mkdir -p "$d"'];
  // Files carried inline: base64 keeps their lines and any odd byte out of the shell's way.
  const write = (data: Buffer, file: string) =>
    `printf '%s' '${data.toString('base64')}' | base64 -d > "$d/${file}"`;
  const commands: ShellCommand[] = chunks.map((chunk, index) => ({
    comment: `${label}: part ${index + 1} of ${total}`,
    timeoutSeconds: 120,
    commands: [
      ...staging,
      '{',
      ...splitEvery(chunk, LINE_CHARS).map((line) => `printf '%s' '${line}'`),
      `} > "$d/${parts[index]}.tmp"`,
      `mv -f "$d/${parts[index]}.tmp" "$d/${parts[index]}"`,
      `echo "staged ${parts[index]} of ${total} in $d"`,
    ],
  }));
  const pem = caCert === 'none' ? undefined : caCert?.pem;
  const settings = {
    ...options.settings,
    API_TOKEN_PARAMETER: options.tokenParameter,
    AWS_REGION: options.region,
  };
  const given = Object.entries(settings).flatMap(([name, value]) =>
    value === undefined ? [] : [`--${flagName(name)}`, String(value)],
  );
  const args = ['--bundle', '"$d/ec2-agent.mjs"', '--sha256', hash, ...given.map(shellQuote)];
  if (caCert) args.push('--extra-ca-certs', pem ? '"$d/extra-ca.pem"' : 'none');
  commands.push({
    comment: `${label}: verify and install`,
    timeoutSeconds: 900,
    commands: [
      ...staging,
      `for p in ${parts.join(' ')}; do`,
      `  [ -s "$d/$p" ] || { echo "$p of ${total} is missing from $d: send the part commands first" >&2; exit 1; }`,
      'done',
      `(cd "$d" && cat ${parts.join(' ')}) | base64 -d | gunzip > "$d/ec2-agent.mjs.tmp" || {`,
      `  echo "the staged parts in $d do not decode: send the part commands again" >&2; rm -f "$d/ec2-agent.mjs.tmp"; exit 1; }`,
      `got=$(sha256sum "$d/ec2-agent.mjs.tmp" | cut -d ' ' -f 1)`,
      `if [ "$got" != ${hash} ]; then`,
      `  echo "bundle checksum mismatch: expected ${hash}, got $got" >&2; rm -f "$d/ec2-agent.mjs.tmp"; exit 1`,
      'fi',
      'mv -f "$d/ec2-agent.mjs.tmp" "$d/ec2-agent.mjs"',
      write(options.installScript, 'install.sh'),
      write(options.unit, 'random-number-agent.service'),
      ...(pem ? [write(pem, 'extra-ca.pem')] : []),
      `echo "bundle ${hash} verified (${bundle.length} bytes)"`,
      // Older staged versions are no longer needed once this one is verified.
      `find "$(dirname "$d")" -mindepth 1 -maxdepth 1 ! -name ${hash} -exec rm -rf {} +`,
      `bash "$d/install.sh" ${args.join(' ')}`,
    ],
  });
  for (const command of commands) assertPayloadFits(command);
  return { sha256: hash, bundleBytes: bundle.length, encodedChars: encoded.length, commands };
}
