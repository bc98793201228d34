import { randomBytes } from 'node:crypto';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildDelivery, readAgentFiles, STAGING_ROOT } from '../scripts/aws/delivery.ts';
import { bootHost } from './helpers/host.ts';
import { runPayloads } from './helpers/host-agent.ts';

// The delivery's own failure paths, run as SSM runs them (sh, as root) on the real host: a part sent
// twice, a part missing, a part corrupted, parts that make another bundle. The happy path is
// host-agent-lifecycle.test.ts.
// A host boots in seconds, but a busy 2-core machine can stretch a file past tap's default 120 s.
t.setTimeout(300_000);

t.test('parts: re-sending is harmless, a missing or corrupted one stops the install', async (t) => {
  const host = await bootHost(t);
  const files = await readAgentFiles();
  // Random bytes do not compress: many parts. Never installed (the checks stop it first).
  const bundle = randomBytes(120 * 1024);
  const options = {
    ...files,
    bundle,
    settings: { SERVICE_URL: 'http://x/', SCHEDULE: '* * * * *' },
    chunkChars: 30_000,
  };
  const delivery = buildDelivery(options);
  const parts = delivery.commands.slice(0, -1).map((c) => c.commands);
  const install = delivery.commands.at(-1)?.commands ?? [];
  const dir = join(host.dir, STAGING_ROOT, delivery.sha256);

  t.same(
    (await runPayloads(host, parts.slice(1))).map((r) => r.code),
    parts.slice(1).map(() => 0),
    'every part but the first is staged',
  );
  const missing = await host.runShellScript(install);
  t.not(missing.code, 0, 'install fails while part 1 is missing');
  t.match(missing.stderr, /part-001 of \d+ is missing/, 'and says which part');

  await runPayloads(host, parts);
  t.equal((await host.runShellScript(parts[0] ?? [])).code, 0, 'sending part 1 a second time succeeds');
  t.same(
    readdirSync(dir).sort(),
    parts.map((_, i) => `part-${String(i + 1).padStart(3, '0')}`),
    'one file per part, no leftovers',
  );
  const staged = Buffer.concat(
    parts.map((_, i) => readFileSync(join(dir, `part-${String(i + 1).padStart(3, '0')}`))),
  );
  t.equal(staged.length, delivery.encodedChars, 'the parts hold the whole encoded bundle');

  // One character of part 2 changed: gunzip's CRC check fails, and the install command says what to do.
  const partFile = join(dir, 'part-002');
  const text = readFileSync(partFile, 'utf8');
  writeFileSync(partFile, `${text.slice(0, 100)}${text[100] === 'A' ? 'B' : 'A'}${text.slice(101)}`);
  const corrupted = await host.runShellScript(install);
  t.equal(corrupted.code, 1, 'install fails with a corrupted part');
  t.equal(
    corrupted.stderr.trim(),
    `gzip: stdin: invalid compressed data--crc error\nthe staged parts in ${STAGING_ROOT}/${delivery.sha256} do not decode: send the part commands again`,
    "gunzip's reason, then what to do",
  );
  t.notOk(readdirSync(dir).includes('ec2-agent.mjs'), 'no unverified bundle is left to install');
  t.notOk(readdirSync(dir).includes('ec2-agent.mjs.tmp'), 'nor the half-decoded one');
  t.equal(host.read('/opt/random-number-agent/ec2-agent.mjs'), undefined, 'nothing was installed');

  // Parts that decode, but to another bundle: the install command's own checksum check stops it.
  const impostor = buildDelivery({ ...options, bundle: randomBytes(bundle.length) });
  const impostorParts = impostor.commands.slice(0, -1).map((c) => c.commands);
  t.equal(impostorParts.length, parts.length, 'another bundle of the same size comes in as many parts');
  t.same(
    (await runPayloads(host, impostorParts)).map((r) => r.code),
    impostorParts.map(() => 0),
    "the other bundle's parts are staged",
  );
  const impostorDir = join(host.dir, STAGING_ROOT, impostor.sha256);
  for (const part of readdirSync(impostorDir)) copyFileSync(join(impostorDir, part), join(dir, part));
  const mismatch = await host.runShellScript(install);
  t.equal(mismatch.code, 1, 'install fails when the parts make another bundle');
  t.equal(
    mismatch.stderr.trim(),
    `bundle checksum mismatch: expected ${delivery.sha256}, got ${impostor.sha256}`,
    'and says so with both checksums',
  );
  t.same(
    readdirSync(dir).filter((file) => file.startsWith('ec2-agent.mjs')),
    [],
    'the unverified bundle is removed',
  );
  t.equal(host.read('/opt/random-number-agent/ec2-agent.mjs'), undefined, 'nothing was installed');
});
