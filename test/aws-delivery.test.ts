import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildDelivery, sha256, shellQuote } from '../scripts/aws/delivery.ts';
import { PayloadTooLargeError } from '../scripts/aws/errors.ts';
import { resultsScript } from '../scripts/aws/results.ts';
import {
  assertPayloadFits,
  MAX_PARAMETERS_BYTES,
  payloadBytes,
  SSM_LIMIT_BYTES,
} from '../scripts/aws/ssm-command.ts';

const INSTALL_SH = readFileSync('ec2-agent/install.sh');

function tempDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'delivery-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs one command's lines as the SSM agent would (a script), against a local staging root. */
function runLines(lines: string[], env: Record<string, string>, shell = 'bash') {
  // stdin not a socket (spawnSync's default): else bash takes itself for a remote shell started by
  // sshd and sources ~/.bashrc, which costs about a second on a developer machine with pyenv.
  return spawnSync(shell, ['-c', lines.join('\n')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
    maxBuffer: 10 * 1024 * 1024,
  });
}

t.test('a 300 KB bundle is split into parts that each fit SSM, and reassembles byte for byte', async (t) => {
  // Random bytes do not compress: the worst case for the number and size of parts.
  const bundle = randomBytes(300 * 1024);
  const delivery = buildDelivery({
    bundle,
    installScript: INSTALL_SH,
    installArgs: ['--service-url', 'https://x'],
  });
  t.ok(delivery.commands.length >= 8, `several part commands plus the install (${delivery.commands.length})`);
  for (const command of delivery.commands) {
    t.ok(payloadBytes(command.commands) <= MAX_PARAMETERS_BYTES, `${command.comment} fits the budget`);
  }
  t.ok(MAX_PARAMETERS_BYTES < SSM_LIMIT_BYTES, 'the budget is below 64 KB');

  const root = tempDir(t);
  // Stand in for install.sh: record the arguments it was given.
  const fakeShell = join(root, 'record-args');
  writeFileSync(fakeShell, `#!/bin/bash\nprintf '%s\\n' "$@" > "${root}/args"\n`);
  chmodSync(fakeShell, 0o755);
  const env = { RNA_STAGING_ROOT: join(root, 'staging'), RNA_INSTALL_SHELL: fakeShell };
  // sh, not bash: the SSM agent runs the script with sh (bash on Amazon Linux; dash here is stricter).
  for (const command of delivery.commands) {
    const run = runLines(command.commands, env, 'sh');
    t.equal(run.status, 0, `${command.comment} exits 0 under sh (${run.stderr.trim()})`);
  }
  const staged = join(root, 'staging', delivery.sha256, 'ec2-agent.mjs');
  t.equal(sha256(readFileSync(staged)), sha256(bundle), 'the reassembled bundle has the original sha256');
  t.same(
    readFileSync(join(root, 'staging', delivery.sha256, 'install.sh')),
    INSTALL_SH,
    'install.sh arrives intact',
  );
  const args = readFileSync(join(root, 'args'), 'utf8').trim().split('\n');
  t.same(
    args.slice(1),
    ['--bundle', staged, '--sha256', delivery.sha256, '--service-url', 'https://x'],
    'install.sh gets the bundle, its checksum and the flags',
  );
});

t.test(
  'the real bundle and the real install.sh: delivered, verified and installed under a prefix',
  async (t) => {
    let bundle: Buffer;
    try {
      bundle = readFileSync('dist/ec2-agent.mjs');
    } catch {
      t.fail('dist/ec2-agent.mjs is missing: run `npm run build` first');
      return;
    }
    const url = "https://random-number.example.com/?a='b'&c=$HOME";
    const delivery = buildDelivery({
      bundle,
      installScript: INSTALL_SH,
      installArgs: ['--service-url', url, '--schedule', '*/5 * * * *', '--aws-region', 'eu-west-1'],
    });
    const root = tempDir(t);
    const prefix = join(root, 'prefix');
    // install.sh's --prefix mode lays the files down under a folder and touches neither dnf nor systemd.
    const shell = join(root, 'install-under-prefix');
    writeFileSync(shell, `#!/bin/bash\nexec bash "$@" --prefix ${shellQuote(prefix)}\n`);
    chmodSync(shell, 0o755);
    const env = { RNA_STAGING_ROOT: join(root, 'staging'), RNA_INSTALL_SHELL: shell };
    let last = { status: -1 as number | null, stdout: '', stderr: '' };
    for (const command of delivery.commands) {
      last = runLines(command.commands, env);
      t.equal(last.status, 0, `${command.comment} exits 0 (${last.stderr.trim()})`);
    }
    t.match(last.stdout, /bundle checksum verified/, 'install.sh verified the checksum again');
    t.equal(
      sha256(readFileSync(join(prefix, 'opt/random-number-agent/ec2-agent.mjs'))),
      sha256(bundle),
      'the installed bundle is the built one',
    );
    const envFile = readFileSync(join(prefix, 'etc/random-number-agent/agent.env'), 'utf8');
    t.match(envFile, `SERVICE_URL="${url}"`, 'a URL with quotes and $ survives both shells unchanged');
    t.match(envFile, 'SCHEDULE="*/5 * * * *"', 'the schedule is passed through');
    t.match(envFile, 'AWS_REGION="eu-west-1"', 'the region is passed through');
  },
);

t.test('re-sending a part is harmless; a missing or corrupted part stops the install', async (t) => {
  const bundle = randomBytes(120 * 1024);
  const delivery = buildDelivery({
    bundle,
    installScript: Buffer.from('exit 0\n'),
    installArgs: [],
    chunkChars: 30_000,
  });
  const parts = delivery.commands.slice(0, -1);
  const install = delivery.commands.at(-1)?.commands ?? [];
  const root = tempDir(t);
  const env = { RNA_STAGING_ROOT: root };
  const dir = join(root, delivery.sha256);

  for (const part of parts.slice(1)) runLines(part.commands, env);
  const missing = runLines(install, env);
  t.not(missing.status, 0, 'install fails while part 1 is missing');
  t.match(missing.stderr, /part-001 of \d+ is missing/, 'and says which part');

  for (const part of parts) runLines(part.commands, env);
  t.equal(runLines(parts[0]?.commands ?? [], env).status, 0, 'sending part 1 a second time succeeds');
  t.same(
    readdirSync(dir).sort(),
    parts.map((_, i) => `part-${String(i + 1).padStart(3, '0')}`),
    'one file per part, no leftovers',
  );

  const partFile = join(dir, 'part-002');
  const text = readFileSync(partFile, 'utf8');
  writeFileSync(partFile, `${text.slice(0, 100)}${text[100] === 'A' ? 'B' : 'A'}${text.slice(101)}`);
  const corrupted = runLines(install, env);
  t.not(corrupted.status, 0, 'install fails with a corrupted part');
  t.match(
    corrupted.stderr,
    /checksum mismatch|invalid|unexpected|crc|not in gzip/i,
    'and says the bundle is bad',
  );
  t.notOk(readdirSync(dir).includes('ec2-agent.mjs'), 'no unverified bundle is left to install');
});

t.test('a payload over the limit is refused before anything is sent', async (t) => {
  t.throws(
    () => assertPayloadFits({ comment: 'too big', commands: ['x'.repeat(MAX_PARAMETERS_BYTES)] }),
    PayloadTooLargeError,
    'PayloadTooLargeError',
  );
  t.throws(
    () => buildDelivery({ bundle: randomBytes(1000), installScript: randomBytes(70_000), installArgs: [] }),
    { name: 'PayloadTooLargeError', message: /verify and install.*over the 60000-byte budget/ },
    'an install.sh too large for one command is caught by name, with the command and the budget',
  );
});

t.test('every generated script passes shellcheck as a POSIX sh script', async (t) => {
  const delivery = buildDelivery({
    bundle: randomBytes(60 * 1024),
    installScript: INSTALL_SH,
    installArgs: ['--service-url', "https://x/?q='1'", '--schedule', '* * * * *'],
  });
  const dir = tempDir(t);
  const scripts = [
    ['part', delivery.commands[0]?.commands ?? []],
    ['install', delivery.commands.at(-1)?.commands ?? []],
    ['results', resultsScript({ outputFile: '/root/randomNumber.txt', lines: 60 })],
  ] as const;
  for (const [name, lines] of scripts) {
    const file = join(dir, `${name}.sh`);
    writeFileSync(file, `#!/bin/sh\n${lines.join('\n')}\n`);
    const check = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
    t.equal(check.error, undefined, 'shellcheck runs (it is a prerequisite of make test)');
    t.equal(check.status, 0, `the ${name} script is clean: ${check.stdout.slice(0, 500)}`);
  }
});
