import { execFile, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { sha256 } from '../scripts/aws/delivery.ts';
import { startAwsCli } from './helpers/aws-cli.ts';
import { outputOf } from './helpers/process.ts';

// The Makefile's housekeeping as a user meets it, each in a folder of its own so that the checkout's
// dist/ (which other test files run) is never rebuilt or removed under them.
const ROOT = resolve(import.meta.dirname, '..');
const run = promisify(execFile);
const env = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_NO_WARNINGS: '1' };

/**
 * A copy of what `make build` and the bundles are made from (tsc also reads test/, which
 * scripts/try-ec2.ts imports, and docs/, whose IAM JSON scripts/aws imports), with the checkout's
 * node_modules linked in; timestamps kept, so make sees the same ages as in the checkout.
 */
function checkoutCopy(t: { testdir(): string }): string {
  const dir = t.testdir();
  for (const path of [
    'functions',
    'ec2-agent',
    'lib',
    'scripts',
    'test',
    'docs',
    'Makefile',
    'package.json',
    'package-lock.json',
    'tsconfig.json',
  ]) {
    cpSync(join(ROOT, path), join(dir, path), { recursive: true, preserveTimestamps: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

t.test('make clean removes build output only; the demo numbers in data/ stay', async (t) => {
  const dir = t.testdir({
    dist: { 'ec2-agent.mjs': 'x' },
    '.tap': { 'cache.json': '{}' },
    data: { 'randomNumber.txt': '2026-12-04T00:00:00.000Z 42\n' },
  });
  await run('make', ['-s', '-f', join(ROOT, 'Makefile'), 'clean'], { cwd: dir, env });
  t.notOk(existsSync(join(dir, 'dist')), 'dist/ removed');
  t.notOk(existsSync(join(dir, '.tap')), '.tap/ removed');
  t.equal(
    readFileSync(join(dir, 'data/randomNumber.txt'), 'utf8'),
    '2026-12-04T00:00:00.000Z 42\n',
    'data/randomNumber.txt kept, byte for byte',
  );
});

t.test('npm run agent-command rebuilds the agent bundle first when a source is newer', async (t) => {
  const dir = checkoutCopy(t);
  const bundle = join(dir, 'dist/ec2-agent.mjs');
  const agentCommand = async () => {
    const args = [
      'run',
      '--silent',
      'agent-command',
      '--',
      '--service-url',
      'https://x.example/',
      '--out',
      'out',
    ];
    const { stdout } = await run('npm', args, { cwd: dir, env });
    return /bundle sha256 ([0-9a-f]{64})/.exec(stdout)?.[1];
  };

  t.equal(await agentCommand(), sha256(readFileSync(bundle)), 'no dist/ yet: built, and that bundle is sent');
  const built = statSync(bundle).mtimeMs;
  t.equal(await agentCommand(), sha256(readFileSync(bundle)), 'a second run sends the same bundle');
  t.equal(statSync(bundle).mtimeMs, built, 'without rebuilding it: nothing changed');

  // An edit made after the last build, with a message that ends up in the bundle.
  const main = join(dir, 'ec2-agent/main.ts');
  writeFileSync(main, readFileSync(main, 'utf8').replace("'started'", "'started (edited)'"));
  utimesSync(bundle, new Date(built - 60_000), new Date(built - 60_000));
  const sent = await agentCommand();
  t.match(readFileSync(bundle, 'utf8'), 'started (edited)', 'the edit was built into dist/ec2-agent.mjs');
  t.equal(sent, sha256(readFileSync(bundle)), 'and the rebuilt bundle is the one sent');

  const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts;
  t.match(
    scripts['provision-ec2'],
    /^make -s bundles && /,
    'npm run provision-ec2 asks for fresh bundles the same way',
  );
});

t.test('make teardown-ec2 and ec2-results hand ARGS to the CLI', async (t) => {
  // No credentials anywhere: should ARGS be lost, the CLI fails here instead of calling AWS.
  const none = '/nonexistent/aws';
  const offline = {
    ...env,
    AWS_CONFIG_FILE: none,
    AWS_SHARED_CREDENTIALS_FILE: none,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  for (const target of ['teardown-ec2', 'ec2-results']) {
    const { stdout } = await run('make', ['-s', target, 'ARGS=--help'], { cwd: ROOT, env: offline });
    t.match(stdout, `Usage: npm run ${target} -- `, `make ${target} ARGS=--help: the CLI's own usage`);
  }
});

t.test('make provision-ec2 builds, then hands ARGS to the CLI: a dry run against moto_server', async (t) => {
  // In a copy: provision-ec2 depends on `build`, which always rewrites dist/, and the checkout's
  // dist/ is what the other test files run while this one does.
  const dir = checkoutCopy(t);
  const aws = await startAwsCli(t);
  const before = await aws.snapshot('rn-make');
  const home = mkdtempSync(join(tmpdir(), 'make-home-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const token = 'make-echo-token-0123456789abcdef0123456789';
  const args = `ARGS=--service-url https://x.example/ --name rn-make --dry-run --api-token ${token}`;
  // Not -s: make echoes the recipes it runs, as for a user, and the token must not be among them.
  // stdin not a socket: otherwise make's bash thinks a remote shell started it and reads bashrc.
  const child = spawn('make', ['provision-ec2', args], {
    cwd: dir,
    env: { ...env, ...aws.moto.env, HOME: home, npm_config_update_notifier: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  });
  const r = await outputOf(child);
  t.equal(r.code, 0, `make provision-ec2 exits 0${r.stderr ? `: ${r.stderr}` : ''}`);
  t.ok(existsSync(join(dir, 'dist/ec2-agent.mjs')), 'the agent bundle was built first, in the copy');
  t.match(r.stdout, /^dry run: nothing was changed/m, '--dry-run reached the CLI: a plan, nothing done');
  t.match(
    r.stdout,
    /^ {2}security group: create rn-make in vpc-\w+/m,
    '--name reached the CLI: the plan is for rn-make',
  );
  t.same(await aws.snapshot('rn-make'), before, 'and moto holds nothing new for rn-make');
  t.notMatch(`${r.stdout}${r.stderr}`, token, 'the --api-token value is in none of the output');
  t.match(r.stdout, /^ {2}API token: .*\/random-number\/rn-make\/api-token/m, '--api-token reached the CLI');
});
