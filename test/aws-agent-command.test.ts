import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import t from 'tap';
import { sha256 } from '../scripts/aws/delivery.ts';
import { cliBundle } from './helpers/cli-bundle.ts';
import { selfSignedCa } from './helpers/tls.ts';

// scripts/agent-command.ts pre-compiled (see helpers/cli-bundle.ts); `npm run` is checked once below.
const BUNDLE = await cliBundle('agent-command');

function tempDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'agent-command-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The CLI's bundle, or with `via: 'npm'` `npm run agent-command` as a user runs it, from `cwd`. */
function agentCommand(
  args: string[],
  env: Record<string, string> = {},
  via: 'bundle' | 'npm' = 'bundle',
  cwd?: string,
) {
  const [command, argv] =
    via === 'npm'
      ? ['npm', ['run', '--silent', 'agent-command', '--', ...args]]
      : [process.execPath, [BUNDLE, ...args]];
  return spawnSync(command, argv, {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_NO_WARNINGS: '1', ...env },
    encoding: 'utf8',
    cwd,
    // A run that hangs (the /proc loop below, should its check regress) fails the test instead of
    // outliving it: killed with the test's process still here to see it.
    timeout: RUN_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
}

const RUN_TIMEOUT_MS = 90_000;

/** The bundle run asynchronously, bounded like agentCommand and killed at teardown if still running. */
function spawnBundle(t: { teardown(fn: () => unknown): void }, args: string[]) {
  const child = spawn(process.execPath, [BUNDLE, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_NO_WARNINGS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: RUN_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

interface CommandFile {
  DocumentName: string;
  Targets: { Key: string; Values: string[] }[];
  MaxConcurrency: string;
  MaxErrors: string;
  Parameters: { commands: string[] };
}

t.test('writes one send-command JSON per command; run in order they deliver the bundle intact', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'out');
  const run = agentCommand([
    '--service-url',
    'https://random-number.example.com',
    '--name',
    'fleet-a',
    '--api-token-parameter',
    '/fleet-a/api-token',
    '--region',
    'eu-central-1',
    '--request-timeout-ms',
    '45000',
    '--log-level',
    'debug',
    '--out',
    out,
  ]);
  t.equal(run.status, 0, `exits 0 (${run.stderr.trim()})`);
  const files = readdirSync(out).sort();
  t.ok(files.length >= 2, `several files (${files.join(', ')})`);
  t.match(files.at(-1), /-install\.json$/, 'the install command comes last');
  for (const file of files) {
    t.match(
      run.stdout,
      `aws ssm send-command --region eu-central-1 --cli-input-json file://${join(out, file)}`,
      `prints the aws command for ${file}`,
    );
  }

  const commands: CommandFile[] = [];
  for (const file of files) {
    const path = join(out, file);
    t.ok(statSync(path).size < 64 * 1024, `${file} is under 64 KB`);
    const json = JSON.parse(readFileSync(path, 'utf8')) as CommandFile;
    t.equal(json.DocumentName, 'AWS-RunShellScript', `${file} runs AWS-RunShellScript`);
    t.same(
      json.Targets,
      [
        { Key: 'tag:Project', Values: ['fleet-a'] },
        { Key: 'tag:CreatedBy', Values: ['random-number-provision-ec2'] },
      ],
      `${file} targets the tags (Project and ours), not instance ids`,
    );
    t.ok(json.MaxConcurrency && json.MaxErrors, `${file} sets MaxConcurrency and MaxErrors`);
    commands.push(json);
  }

  // What the commands do on an instance is proven on a real systemd host (host-agent-lifecycle.test.ts
  // runs these very files); here: the install command hands install.sh the flags, quoted for sh.
  const install = commands.at(-1)?.Parameters.commands.at(-1) ?? '';
  t.match(
    install,
    /^bash "\$d\/install\.sh" --bundle "\$d\/ec2-agent\.mjs" --sha256 [0-9a-f]{64} /,
    'runs install.sh on the staged bundle',
  );
  t.match(install, "'--api-token-parameter' '/fleet-a/api-token'", 'install.sh gets the token parameter');
  t.match(install, "'--aws-region' 'eu-central-1'", 'and the region to read it in');
  t.match(install, "'--request-timeout-ms' '45000'", 'every agent setting is a flag: the request timeout');
  t.match(install, "'--log-level' 'debug'", 'and the log level');
  t.match(
    install,
    `--sha256 ${sha256(readFileSync('dist/ec2-agent.mjs'))}`,
    'the checksum is that of dist/ec2-agent.mjs',
  );

  // Files of the caller's own in the folder stay; only NN-*.json files (an earlier bundle's) go.
  writeFileSync(join(out, 'notes.json'), '{}\n');
  writeFileSync(join(out, '99-old.json'), '{}\n');
  const again = agentCommand([
    '--service-url',
    'https://other.example.com',
    '--name',
    'fleet-a',
    '--out',
    out,
  ]);
  t.equal(again.status, 0, 'a second run into the same folder works');
  t.same(
    readdirSync(out).sort(),
    [...files, 'notes.json'].sort(),
    'and replaces its files instead of adding to them: 99-old.json removed, notes.json kept',
  );
});

t.test("relative paths are the caller's, not the checkout's; the printed paths are absolute", async (t) => {
  // `cd certs && npm run agent-command -- --ca-cert ca.crt`: npm runs the script from the checkout's
  // root, so the folder must be inside the checkout for npm to find it (t.testdir is, under .tap/).
  const dir = t.testdir({ certs: {} });
  const certs = join(dir, 'certs');
  const ca = selfSignedCa(certs);
  const args = ['--service-url', 'https://random-number.example.com', '--ca-cert', basename(ca)];
  const run = agentCommand([...args, '--out', 'out'], {}, 'npm', certs);
  t.equal(run.status, 0, `exits 0 (${run.stderr.trim()})`);
  const files = readdirSync(join(certs, 'out')).sort();
  t.match(files.at(-1), /-install\.json$/, '--out out: the files are in certs/out');
  t.match(run.stdout, `agent CA: ${ca} (CN=random-number test CA`, '--ca-cert ca.crt: the CA in certs/');
  for (const file of files) {
    t.match(
      run.stdout,
      ` --cli-input-json file://${join(certs, 'out', file)} `,
      `${file}: an absolute file://`,
    );
  }
  const install = readFileSync(join(certs, 'out', files.at(-1) ?? ''), 'utf8');
  t.match(install, readFileSync(ca).toString('base64').slice(0, 200), 'the CA rides in the install command');

  // Not through npm (no INIT_CWD), a relative path is the working folder's; printed absolute all the same.
  const here = relative(process.cwd(), join(dir, 'here'));
  const bundle = agentCommand([...args.slice(0, 2), '--out', here]);
  t.equal(bundle.status, 0, `the bundle: exit 0 (${bundle.stderr.trim()})`);
  t.match(
    bundle.stdout,
    ` file://${join(dir, 'here')}/01-part-1.json `,
    `--out ${here}: an absolute file://`,
  );
});

t.test('clear errors for bad input', async (t) => {
  const noUrl = agentCommand([]);
  t.equal(noUrl.status, 2, 'exit 2 without --service-url');
  t.match(noUrl.stderr, /--service-url is required/, 'names --service-url');
  t.notMatch(noUrl.stderr, /\n\s+at /, 'no stack trace');

  const noRegion = agentCommand(['--service-url', 'https://x', '--api-token-parameter', '/p'], {
    AWS_REGION: '',
  });
  t.equal(noRegion.status, 2, 'exit 2 for a token parameter without a region');
  t.match(noRegion.stderr, /--region or set AWS_REGION/, 'says how to give the region');

  const badName = agentCommand(['--service-url', 'https://x', '--name', '1st_fleet']);
  t.equal(badName.status, 2, 'exit 2 for a --name AWS names cannot carry');
  t.equal(
    badName.stderr,
    'agent-command: --name must be 1–41 letters, digits or dashes, starting with a letter (got "1st_fleet")\n',
    'one line saying what a name may be',
  );

  // The region goes into the install command and the printed aws commands: the agent's AWS_REGION rule.
  const dir = tempDir(t);
  for (const [index, [args, env, line]] of (
    [
      [['--region', 'us-east-1 '], {}, '--region must look like us-east-1 (got "us-east-1 ")'],
      [['--region', "x'; rm -rf /"], {}, `--region must look like us-east-1 (got "x'; rm -rf /")`],
      [[], { AWS_REGION: 'eu west 1' }, 'AWS_REGION must look like us-east-1 (got "eu west 1")'],
      [[], { AWS_DEFAULT_REGION: 'eu$x' }, 'AWS_DEFAULT_REGION must look like us-east-1 (got "eu$x")'],
    ] as const
  ).entries()) {
    const out = join(dir, String(index));
    const run = agentCommand(['--service-url', 'https://x', '--out', out, ...args], env);
    t.equal(run.status, 2, `exit 2 for ${line}`);
    t.equal(run.stderr, `agent-command: ${line}\n`, 'one line naming where the region came from');
    t.notOk(existsSync(out), 'and no file written');
  }

  // Without the check Node's mkdir would spin at 100% CPU there: killed at RUN_TIMEOUT_MS, status null.
  const proc = agentCommand(['--service-url', 'https://x', '--out', '/proc/random-number']);
  t.equal(proc.status, 2, `exit 2 for an --out folder under /proc (signal ${proc.signal})`);
  t.match(
    proc.stderr,
    /^agent-command: --out \/proc\/random-number: give a folder outside \/proc$/m,
    'says so',
  );

  // A file where the folder should be (--out README.md): refused, and the file left as it was.
  const file = join(tempDir(t), 'notes.md');
  writeFileSync(file, 'kept\n');
  const onFile = agentCommand(['--service-url', 'https://x', '--out', file]);
  t.equal(onFile.status, 2, 'exit 2 for an --out that is a file');
  t.equal(
    onFile.stderr,
    `agent-command: --out ${file}: cannot make that folder (EEXIST); give a folder you may write to\n`,
    'one line naming the flag and what to give instead',
  );
  t.equal(readFileSync(file, 'utf8'), 'kept\n', 'the file is untouched');

  const relative = agentCommand(['--service-url', 'https://x', '--output-file', 'numbers.txt']);
  t.equal(relative.status, 2, 'exit 2 for a relative --output-file');
  t.match(relative.stderr, /--output-file must be an absolute file path/, 'says what an output file must be');
  // The agent's own rule and words, with the flag's name: checked before anything is written.
  const colon = agentCommand(['--service-url', 'https://x', '--output-file', '/tmp:/etc:rbind/x']);
  t.equal(colon.status, 2, 'exit 2 for an output path that would break the unit');
  t.match(
    colon.stderr,
    /^agent-command: invalid configuration: --output-file must be an absolute file path of letters, digits and \._-\/ without \.\./,
    'in the words the agent uses for OUTPUT_FILE',
  );
  const [timeout, level] = [
    agentCommand(['--service-url', 'https://x', '--request-timeout-ms', '2s']),
    agentCommand(['--service-url', 'https://x', '--log-level', 'loud']),
  ];
  t.equal(timeout.status, 2, 'exit 2 for a --request-timeout-ms that is not a number');
  t.match(
    timeout.stderr,
    /--request-timeout-ms must be a whole number from 100/,
    '--request-timeout-ms checked',
  );
  t.equal(level.status, 2, 'exit 2 for an unknown --log-level');
  t.match(level.stderr, /--log-level must be one of fatal/, '--log-level checked');

  // A token over http:// would cross the network in clear: only when the caller says so.
  const plain = ['--service-url', 'http://x/', '--api-token-parameter', '/p', '--region', 'us-east-1'];
  const [clear, allowed] = [agentCommand(plain), agentCommand([...plain, '--allow-plain-http'])];
  t.equal(clear.status, 2, 'exit 2 for a token parameter with an http:// URL');
  t.match(
    clear.stderr,
    /is http:\/\/: the agent would send its API token in clear; use https:\/\/, or pass --allow-plain-http/,
    'says why and the two ways on',
  );
  t.equal(allowed.status, 0, 'with --allow-plain-http it is written');
  t.equal(agentCommand(['--service-url', 'http://x/']).status, 0, 'http:// without a token is fine');

  const unknown = agentCommand(['--service-url', 'https://x', '--bogus']);
  t.equal(unknown.status, 2, 'exit 2 for an unknown flag');
  t.match(unknown.stderr, /Unknown option '--bogus'.*see --help/, 'names the flag and points at --help');
  // parseArgs' own message for a value starting with a dash runs over three lines.
  const dash = agentCommand(['--service-url', 'https://x', '--request-timeout-ms', '-5']);
  t.equal(dash.status, 2, 'exit 2 for a flag value that starts with a dash');
  t.same(
    dash.stderr.trimEnd().split('\n'),
    ["agent-command: Option '--request-timeout-ms' argument is ambiguous; see --help"],
    'one line',
  );

  // The entry users run: `npm run agent-command` (tsx).
  const help = agentCommand(['--help'], {}, 'npm');
  t.equal(help.status, 0, '`npm run agent-command -- --help` exits 0');
  t.match(help.stdout, /--cli-input-json/, '--help explains what the files are for');
});

t.test(
  'a reader that stops early (| head) loses the output, not the work: exit 0, no stack trace',
  async (t) => {
    const out = join(tempDir(t), 'out');
    const child = spawnBundle(t, ['--service-url', 'https://x.test/', '--out', out]);
    // Closed before the CLI writes its first line: every line it prints meets EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const [code] = await once(child, 'close');
    t.equal(code, 0, 'exit 0: the work was done');
    t.equal(stderr, '', 'nothing on stderr (no EPIPE stack trace)');
    t.match(readdirSync(out).at(-1), /-install\.json$/, 'every command file written, the install one last');
  },
);

t.test('`2>&1 | head` stopping early: a bad flag still exits 2 (stderr meets EPIPE too)', async (t) => {
  const child = spawnBundle(t, ['--service-url', 'https://x.test/', '--bogus']);
  // Both closed before the CLI writes: its one-line error to stderr meets EPIPE too.
  child.stdout.destroy();
  child.stderr.destroy();
  const [code] = await once(child, 'close');
  t.equal(code, 2, 'exit 2: what it was given cannot work, whoever reads stderr');
});
