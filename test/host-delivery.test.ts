import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildDelivery, readAgentFiles, STAGING_ROOT } from '../scripts/aws/delivery.ts';
import { bootHost } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, fastAgent, runPayloads } from './helpers/host-agent.ts';
import { NODE22, startService } from './helpers/service.ts';

// The delivery's own failure paths, run as SSM runs them (sh, as root) on the real host: a part sent
// twice, a part missing, a part corrupted, parts that make another bundle; and install.sh on a host
// with no Node.js 22 and no way to install it. The happy path is host-agent-lifecycle.test.ts.
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

t.test(
  'no Node.js 22 and no dnf to install it: install.sh says so, installs nothing, leaves a running agent alone',
  async (t) => {
    const service = await startService(t);
    const host = await bootHost(t);
    const url = `${service.url}/`;
    const NODE = '/usr/bin/node-22';
    // An instance in a private subnet with no package repository: no nodejs22 installed, and dnf cannot
    // get it. Here: the Node.js 22 the host has mounted taken away, and no dnf at all (Debian).
    await host.run(['sh', '-c', `umount ${NODE} && rm -f ${NODE}`]);
    t.equal(
      (await host.exec(['sh', '-c', 'command -v node-22 node dnf'])).stdout,
      '',
      'the host has no node-22, no node and no dnf',
    );
    const failed = (await runPayloads(host, await agentCommandPayloads(t, fastAgent(url)))).at(-1);
    t.equal(failed?.code, 1, 'the install payload exits 1');
    t.match(
      failed?.stdout,
      /^install\.sh: installing Node\.js 22 \(dnf install -y nodejs22\)$/m,
      'it tried dnf',
    );
    t.equal(
      failed?.stderr.trim().split('\n').at(-1),
      'install.sh: error: dnf install nodejs22 failed',
      "its last line is install.sh's error naming nodejs22",
    );
    for (const path of [
      `/etc/systemd/system/${AGENT}.service`,
      `/opt/${AGENT}`,
      `/etc/${AGENT}`,
      '/root/randomNumber.txt',
    ]) {
      t.notOk(existsSync(join(host.dir, path)), `nothing installed: no ${path}`);
    }
    t.not((await host.exec(['id', '-u', AGENT])).code, 0, 'and no agent user');
    t.equal((await host.unit(AGENT, ['LoadState'])).LoadState, 'not-found', 'systemd knows no such unit');

    // Node.js 22 installed (what dnf would have done), the agent installed and polling; then node-22
    // gone again and an upgrade sent: a new bundle and a new schedule.
    copyFileSync(NODE22 as string, join(host.dir, NODE));
    chmodSync(join(host.dir, NODE), 0o755);
    const installed = (await runPayloads(host, await agentCommandPayloads(t, fastAgent(url)))).at(-1);
    t.equal(installed?.code, 0, `with node-22 there, the install succeeds ${installed?.stderr.trim()}`);
    const files = [
      '/opt/random-number-agent/ec2-agent.mjs',
      `/etc/${AGENT}/agent.env`,
      `/etc/systemd/system/${AGENT}.service`,
    ];
    const before = files.map((path) => host.read(path));
    const running = await host.unit(AGENT, ['MainPID', 'NRestarts', 'ActiveState']);
    // The running agent keeps the binary it was started from; only the name is gone.
    await host.run(['rm', NODE]);
    const agentFiles = await readAgentFiles();
    const upgrade = buildDelivery({
      ...agentFiles,
      bundle: Buffer.concat([agentFiles.bundle, Buffer.from('\n// upgraded\n')]),
      settings: { SERVICE_URL: url, SCHEDULE: '*/3 * * * * *' },
    });
    const refused = (
      await runPayloads(
        host,
        upgrade.commands.map((c) => c.commands),
      )
    ).at(-1);
    t.equal(refused?.code, 1, 'the upgrade payload exits 1');
    t.equal(
      refused?.stderr.trim().split('\n').at(-1),
      'install.sh: error: dnf install nodejs22 failed',
      'with the same line',
    );
    t.same(
      files.map((path) => host.read(path)),
      before,
      'the bundle, agent.env and unit are as they were',
    );
    t.same(
      await host.unit(AGENT, ['MainPID', 'NRestarts', 'ActiveState']),
      running,
      'the agent runs on: same process, not restarted, active',
    );
    const polled = host.lines('/root/randomNumber.txt').length;
    t.ok(
      (await host.linesAtLeast('/root/randomNumber.txt', polled + 1, 10_000)).length > polled,
      'and still polls',
    );
  },
);
