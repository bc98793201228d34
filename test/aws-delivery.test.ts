import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildDelivery } from '../scripts/aws/delivery.ts';
import { PayloadTooLargeError } from '../scripts/aws/errors.ts';
import { resultsScript } from '../scripts/aws/results.ts';
import {
  assertPayloadFits,
  MAX_PARAMETERS_BYTES,
  payloadBytes,
  sendCommandInput,
} from '../scripts/aws/ssm-command.ts';

const INSTALL_SH = readFileSync('ec2-agent/install.sh');
const UNIT = readFileSync('ec2-agent/random-number-agent.service');
/** What buildDelivery needs besides the bundle: the real install.sh and unit, and minimal settings. */
const FILES = {
  installScript: INSTALL_SH,
  unit: UNIT,
  settings: { SERVICE_URL: 'https://x', SCHEDULE: '* * * * *' },
};

t.test(
  'a 300 KB bundle is split into parts that each fit SSM (run on a real host: host-delivery)',
  async (t) => {
    // Random bytes do not compress: the worst case for the number and size of parts.
    const delivery = buildDelivery({ ...FILES, bundle: randomBytes(300 * 1024) });
    t.ok(
      delivery.commands.length >= 8,
      `several part commands plus the install (${delivery.commands.length})`,
    );
    for (const command of delivery.commands) {
      t.ok(payloadBytes(command.commands) <= MAX_PARAMETERS_BYTES, `${command.comment} fits the budget`);
      // SSM's 64 KB covers the document and what the request gives it: the whole SendCommand input as
      // sent, measured, plus AWS-RunShellScript's own document (about 1.5 KB; 2 KB allowed).
      const sent = Buffer.byteLength(
        JSON.stringify(sendCommandInput(command, { tagProject: 'random-number' })),
      );
      t.ok(
        sent + 2048 <= 64 * 1024,
        `${command.comment}: SendCommand input ${sent} bytes, with the document under 64 KB`,
      );
    }
  },
);

t.test('a payload over the limit is refused before anything is sent', async (t) => {
  t.throws(
    () =>
      assertPayloadFits({
        comment: 'too big',
        commands: ['x'.repeat(MAX_PARAMETERS_BYTES)],
        timeoutSeconds: 60,
      }),
    PayloadTooLargeError,
    'PayloadTooLargeError',
  );
  t.throws(
    () => buildDelivery({ ...FILES, bundle: randomBytes(1000), installScript: randomBytes(70_000) }),
    { name: 'PayloadTooLargeError', message: /verify and install.*over the 60000-byte budget/ },
    'an install.sh too large for one command is caught by name, with the command and the budget',
  );
});

t.test('every generated script passes shellcheck as a POSIX sh script', async (t) => {
  const delivery = buildDelivery({
    ...FILES,
    bundle: randomBytes(60 * 1024),
    settings: { ...FILES.settings, SERVICE_URL: "https://x/?q='1'" },
  });
  const dir = t.testdir();
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
