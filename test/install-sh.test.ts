import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { loadConfig } from '../ec2-agent/config.ts';
import { AGENT_BUNDLE, fileLines, LINE, startAgent } from './helpers/agent.ts';
import { startService } from './helpers/service.ts';
import { selfSignedCa } from './helpers/tls.ts';

const INSTALL = resolve(import.meta.dirname, '../ec2-agent/install.sh');
const UNIT = resolve(import.meta.dirname, '../ec2-agent/random-number-agent.service');

function install(args: string[], env: Record<string, string> = {}) {
  const run = spawnSync('bash', [INSTALL, ...args], {
    // stdin not a socket: otherwise bash thinks a remote shell started it and reads ~/.bashrc.
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const mode = (path: string) => statSync(path).mode & 0o777;

/** The settings lines of an env file install.sh wrote, sorted (its order is the agent's table's). */
const envLines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .sort();
/**
 * The lines install.sh should write for `env`: values without a quote or backslash, so KEY="value".
 * How systemd reads quotes and backslashes is checked on the real host (host-agent-config.test.ts).
 */
const quoted = (env: Record<string, string>) =>
  Object.entries(env)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();

t.test('shellcheck finds nothing', async (t) => {
  const run = spawnSync('shellcheck', [INSTALL], { encoding: 'utf8' });
  t.equal(run.status, 0, `shellcheck is clean${run.stdout ? `:\n${run.stdout}` : ''}`);
});

t.test('--prefix lays down bundle, env file and unit with the right modes; twice is the same', async (t) => {
  const prefix = t.testdir();
  const sha = createHash('sha256').update(readFileSync(AGENT_BUNDLE)).digest('hex');
  const args = [
    '--bundle',
    AGENT_BUNDLE,
    '--sha256',
    sha,
    '--service-url',
    'https://random-number.example.com/',
    '--api-token-parameter',
    '/random-number/api-token',
    '--aws-region',
    'eu-west-1',
    '--prefix',
    prefix,
  ];
  const first = install(args);
  t.equal(first.code, 0, `first run exits 0 ${first.stderr}`);
  t.match(first.stdout, /checksum verified/, 'says the checksum was verified');
  t.match(
    first.stdout.trim().split('\n').at(-1),
    /^random-number-agent: installed under /,
    'last line: the outcome',
  );

  const bundle = join(prefix, 'opt/random-number-agent/ec2-agent.mjs');
  const envFile = join(prefix, 'etc/random-number-agent/agent.env');
  const unitFile = join(prefix, 'etc/systemd/system/random-number-agent.service');
  t.ok(readFileSync(bundle).equals(readFileSync(AGENT_BUNDLE)), 'the bundle, byte for byte');
  t.equal(mode(bundle), 0o644, 'bundle 0644');
  t.equal(mode(envFile), 0o600, 'env file 0600 (it names the token parameter; keep it private)');
  t.equal(
    mode(join(prefix, 'etc/random-number-agent')),
    0o755,
    'etc folder 0755: the agent, maybe not root, reads the extra CA there',
  );
  t.equal(mode(unitFile), 0o644, 'unit 0644');
  const output = join(prefix, 'root/randomNumber.txt');
  t.equal(readFileSync(output, 'utf8'), '', 'the output file exists, empty (BindPaths needs it)');
  t.equal(mode(output), 0o644, 'output file 0644');
  t.equal(mode(join(prefix, 'root')), 0o755, 'a missing output folder is made 0755');
  t.equal(
    statSync(output).uid,
    process.getuid?.(),
    '--prefix: the output file is left to whoever runs install.sh',
  );
  t.not(
    spawnSync('id', ['-u', 'random-number-agent']).status,
    0,
    '--prefix: no user is made on this machine',
  );
  t.equal(
    readFileSync(unitFile, 'utf8'),
    readFileSync(UNIT, 'utf8'),
    'with the defaults (node-22, /root) the unit is exactly ec2-agent/random-number-agent.service',
  );
  const env = {
    SERVICE_URL: 'https://random-number.example.com/',
    SCHEDULE: '* * * * *',
    OUTPUT_FILE: '/root/randomNumber.txt',
    REQUEST_TIMEOUT_MS: '20000',
    LOG_LEVEL: 'info',
    API_TOKEN_PARAMETER: '/random-number/api-token',
    AWS_REGION: 'eu-west-1',
  };
  t.same(envLines(envFile), quoted(env), 'env file: every setting, defaults included, each in double quotes');
  t.match(loadConfig(env), { apiTokenParameter: '/random-number/api-token' }, 'the agent accepts that env');

  const before = readdirSync(prefix, { recursive: true }).sort();
  const second = install(args);
  t.equal(second.code, 0, 'second run exits 0');
  t.same(
    readdirSync(prefix, { recursive: true }).sort(),
    before,
    'second run: same files, no temp files left',
  );
  t.same(envLines(envFile), quoted(env), 'second run: same env');
  t.equal(readFileSync(output, 'utf8'), '', 'second run: the output file is not replaced');
  t.equal(readFileSync(unitFile, 'utf8'), readFileSync(UNIT, 'utf8'), 'second run: same unit');
});

t.test('--sha256 in upper case is the same checksum', async (t) => {
  const sha = createHash('sha256').update(readFileSync(AGENT_BUNDLE)).digest('hex').toUpperCase();
  const args = ['--bundle', AGENT_BUNDLE, '--sha256', sha, '--service-url', 'http://x/'];
  const run = install([...args, '--prefix', t.testdir()]);
  t.equal(run.code, 0, `exit 0 ${run.stderr}`);
  t.match(run.stdout, /bundle checksum verified \([0-9a-f]{64}\)/, 'says the checksum was verified');
});

t.test('inputs from the environment; unit follows the output folder and Node binary', async (t) => {
  const prefix = t.testdir();
  const run = install([], {
    BUNDLE: AGENT_BUNDLE,
    SERVICE_URL: 'http://10.0.0.5:8080/',
    SCHEDULE: '*/5 * * * * *',
    OUTPUT_FILE: '/var/lib/random-number/numbers.txt',
    REQUEST_TIMEOUT_MS: '30000',
    LOG_LEVEL: 'debug',
    PREFIX: prefix,
    NODE_BIN: '/usr/local/bin/node',
  });
  t.equal(run.code, 0, `exit 0 ${run.stderr}`);
  const unit = readFileSync(join(prefix, 'etc/systemd/system/random-number-agent.service'), 'utf8');
  t.match(
    unit,
    /^ExecStart=\/usr\/local\/bin\/node \/opt\/random-number-agent\/ec2-agent\.mjs$/m,
    'ExecStart',
  );
  t.match(unit, /^BindPaths=\/var\/lib\/random-number\/numbers\.txt$/m, 'BindPaths: the output file');
  t.match(unit, /^User=random-number-agent$/m, 'User: the agent user, whatever the output folder');
  for (const line of [
    'Restart=always',
    'EnvironmentFile=/etc/random-number-agent/agent.env',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'PrivateTmp=yes',
    'StandardOutput=journal',
  ]) {
    t.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), line);
  }
  t.ok(existsSync(join(prefix, 'var/lib/random-number/numbers.txt')), 'output folder and file created');
  t.same(
    envLines(join(prefix, 'etc/random-number-agent/agent.env')),
    quoted({
      SERVICE_URL: 'http://10.0.0.5:8080/',
      SCHEDULE: '*/5 * * * * *',
      OUTPUT_FILE: '/var/lib/random-number/numbers.txt',
      REQUEST_TIMEOUT_MS: '30000',
      LOG_LEVEL: 'debug',
    }),
    'env file: the settings from the environment; no token parameter line when unset',
  );
});

t.test('an API_TOKEN in its environment is never written to agent.env nor printed', async (t) => {
  const prefix = t.testdir();
  const token = `tok-${'x'.repeat(40)}`;
  const run = install(['--bundle', AGENT_BUNDLE, '--service-url', 'https://x/', '--prefix', prefix], {
    API_TOKEN: token,
  });
  t.equal(run.code, 0, `exit 0 ${run.stderr}`);
  const env = readFileSync(join(prefix, 'etc/random-number-agent/agent.env'), 'utf8');
  t.notMatch(env, /^API_TOKEN=/m, 'no API_TOKEN line in agent.env (the token comes from SSM, by name)');
  t.notOk(env.includes(token), 'the token is nowhere in agent.env');
  t.notOk(run.stdout.includes(token), 'nor in what install.sh prints');
  t.notOk(run.stderr.includes(token), 'nor in its errors');
});

/**
 * The unit's sandbox, setting by setting, as the installed unit must carry it: a line deleted, changed
 * or overridden by a later one (systemd's last assignment wins) weakens what `systemd-analyze security`
 * scores, and the byte-for-byte comparison with the unit in the checkout cannot see that.
 */
const HARDENING: Record<string, string[]> = {
  User: ['random-number-agent'],
  UMask: ['0077'],
  CapabilityBoundingSet: [''],
  NoNewPrivileges: ['yes'],
  ProtectSystem: ['strict'],
  ProtectHome: ['tmpfs'],
  PrivateTmp: ['yes'],
  PrivateDevices: ['yes'],
  PrivateIPC: ['yes'],
  PrivateUsers: ['yes'],
  ProtectProc: ['invisible'],
  ProcSubset: ['pid'],
  ProtectKernelTunables: ['yes'],
  ProtectKernelModules: ['yes'],
  ProtectKernelLogs: ['yes'],
  ProtectControlGroups: ['yes'],
  ProtectClock: ['yes'],
  ProtectHostname: ['yes'],
  RemoveIPC: ['yes'],
  KeyringMode: ['private'],
  RestrictSUIDSGID: ['yes'],
  RestrictRealtime: ['yes'],
  RestrictNamespaces: ['yes'],
  LockPersonality: ['yes'],
  RestrictAddressFamilies: ['AF_INET AF_INET6 AF_UNIX'],
  SystemCallArchitectures: ['native'],
  SystemCallFilter: ['@system-service', '~@privileged @resources'],
  SystemCallErrorNumber: ['EPERM'],
  AmbientCapabilities: [],
};

/** Every value each key of the unit's [Service] section is given, in order. */
function serviceSettings(unit: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const line of unit.split('\n')) {
    if (/^\[.*\]$/.test(line)) section = line;
    const setting = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (section !== '[Service]' || !setting) continue;
    const [, key, value] = setting as unknown as [string, string, string];
    settings.set(key, [...(settings.get(key) ?? []), value]);
  }
  return settings;
}

t.test("the installed unit's hardening: every sandbox setting, each given once and as pinned", async (t) => {
  const prefix = t.testdir();
  t.equal(
    install(['--bundle', AGENT_BUNDLE, '--service-url', 'http://x/', '--prefix', prefix]).code,
    0,
    'installed',
  );
  const settings = serviceSettings(
    readFileSync(join(prefix, 'etc/systemd/system/random-number-agent.service'), 'utf8'),
  );
  for (const [key, values] of Object.entries(HARDENING)) {
    t.same(
      settings.get(key) ?? [],
      values,
      values.length ? `${key}=${values.join(' then ')}` : `no ${key}= (it would widen the sandbox)`,
    );
  }
});

t.test('a re-install without the token parameter the installed agent had says the token goes', async (t) => {
  const prefix = t.testdir();
  const base = ['--bundle', AGENT_BUNDLE, '--service-url', 'https://x/', '--prefix', join(prefix, 'root')];
  const withToken = [
    ...base,
    '--api-token-parameter',
    '/random-number/rn/api-token',
    '--aws-region',
    'us-east-1',
  ];
  const warning =
    /install\.sh: warning: the agent installed here read its API token from SSM \(API_TOKEN_PARAMETER\) and this install gives it none: a service that requires one will answer 401; pass --api-token-parameter to keep it/;
  const first = install(withToken);
  t.equal(first.code, 0, 'installed with a token parameter');
  t.notMatch(first.stdout, /warning: the agent installed here/, 'a first install: nothing to warn about');
  t.notMatch(install(withToken).stdout, /warning: the agent installed here/, 'again with it: no warning');
  const without = install(base);
  t.equal(without.code, 0, 'reinstalled without it (as agent-command without the flag does)');
  t.match(without.stdout, warning, 'says the token goes, and how to keep it');
  t.notMatch(install(base).stdout, /warning: the agent installed here/, 'once gone, nothing more to say');
});

t.test(
  '--extra-ca-certs: checked by the agent, copied, given to it as SERVICE_CA_FILE; kept by a re-run without it; `none` removes it',
  async (t) => {
    const prefix = t.testdir({ 'x.txt': 'hi' });
    selfSignedCa(prefix);
    const base = ['--bundle', AGENT_BUNDLE, '--service-url', 'https://x/', '--prefix', join(prefix, 'root')];
    const envFile = () => envLines(join(prefix, 'root/etc/random-number-agent/agent.env'));
    const caLine = 'SERVICE_CA_FILE="/etc/random-number-agent/extra-ca.pem"';
    t.equal(install([...base, '--extra-ca-certs', join(prefix, 'ca.pem')]).code, 0, 'installed');
    const copied = join(prefix, 'root/etc/random-number-agent/extra-ca.pem');
    t.equal(readFileSync(copied, 'utf8'), readFileSync(join(prefix, 'ca.pem'), 'utf8'), 'the PEM, copied');
    t.ok(envFile().includes(caLine), 'SERVICE_CA_FILE points at it');
    t.notOk(
      envFile().some((line) => line.startsWith('NODE_EXTRA_CA_CERTS=')),
      'not NODE_EXTRA_CA_CERTS: that would reach the AWS calls',
    );

    const kept = install(base);
    t.equal(kept.code, 0, 'reinstalled without the flag');
    t.equal(readFileSync(copied, 'utf8'), readFileSync(join(prefix, 'ca.pem'), 'utf8'), 'the CA is kept');
    t.ok(envFile().includes(caLine), 'and still given to the agent');
    t.match(
      kept.stdout,
      /keeping the CA installed earlier .*--extra-ca-certs none removes it/,
      'and says so',
    );

    t.equal(install([...base, '--extra-ca-certs', 'none']).code, 0, 'reinstalled with --extra-ca-certs none');
    t.notOk(existsSync(copied), 'the copy is gone');
    t.notOk(
      envFile().some((line) => line.startsWith('SERVICE_CA_FILE=')),
      'and so is the variable',
    );
    t.equal(install([...base, '--extra-ca-certs', 'none']).code, 0, '`none` with nothing installed: fine');

    const bad = install([...base, '--extra-ca-certs', join(prefix, 'x.txt')]);
    t.equal(bad.code, 78, "a file that is not PEM: the agent's exit 78");
    t.match(
      bad.stderr,
      /SERVICE_CA_FILE must be a readable file of PEM CA certificates .*no PEM certificate/,
    );
    t.notOk(existsSync(copied), 'nothing installed');
    const own = install([...base, '--service-ca-file', join(prefix, 'ca.pem')]);
    t.equal(own.code, 1, '--service-ca-file: refused (install.sh alone says where the CA lives)');
    t.match(own.stderr, /give the service's CA with --extra-ca-certs PEM/, 'pointing at --extra-ca-certs');
  },
);

t.test('refusals of install.sh itself: exit 1, nothing is changed', async (t) => {
  const prefix = join(t.testdir(), 'root');
  const bad: [string[], RegExp, string][] = [
    [
      ['--bundle', AGENT_BUNDLE, '--sha256', '0'.repeat(64), '--service-url', 'http://x/'],
      /checksum mismatch .*nothing was changed/,
      'checksum mismatch',
    ],
    [
      ['--bundle', AGENT_BUNDLE, '--sha256', 'abc', '--service-url', 'http://x/'],
      /--sha256 must be 64 hex digits/,
      'malformed checksum',
    ],
    [['--service-url', 'http://x/'], /--bundle FILE is required/, 'missing --bundle'],
    [['--bundle', '/no/such/file', '--service-url', 'http://x/'], /no such readable file/, 'bundle missing'],
    [['--bundle', AGENT_BUNDLE, '--service-url'], /--service-url needs a value/, 'flag without value'],
    [['--bundle', AGENT_BUNDLE, '--Bad_Flag', '1'], /unknown flag: --Bad_Flag/, 'not a flag name'],
  ];
  for (const [args, message, what] of bad) {
    const run = install([...args, '--prefix', prefix]);
    t.equal(run.code, 1, `${what}: exit 1`);
    t.match(run.stderr, message, `${what}: says what is wrong`);
    t.notOk(existsSync(prefix), `${what}: nothing created`);
  }
});

t.test('an output path that is not a regular file: refused before anything is changed', async (t) => {
  const prefix = t.testdir({ secret: 'keep\n', folder: {} });
  // A symlink would hand its target to the agent user (chown and BindPaths follow it).
  symlinkSync(join(prefix, 'secret'), join(prefix, 'link'));
  for (const [path, what] of [
    ['/link', 'a symlink'],
    ['/folder', 'a folder'],
  ]) {
    const args = ['--bundle', AGENT_BUNDLE, '--service-url', 'http://x/', '--output-file', `${path}`];
    const run = install([...args, '--prefix', prefix]);
    t.equal(run.code, 1, `${what}: exit 1`);
    t.match(run.stderr, /exists and is not a regular file; give the path of a file/, `${what}: says so`);
    t.notOk(existsSync(join(prefix, 'opt')), `${what}: nothing installed`);
  }
  t.equal(readFileSync(join(prefix, 'secret'), 'utf8'), 'keep\n', "the symlink's target is untouched");
});

t.test(
  'agent settings are refused by the agent bundle itself: its words, exit 78, nothing changed',
  async (t) => {
    const prefix = join(t.testdir(), 'root');
    const url = ['--service-url', 'http://x/'];
    const bad: [string[], Record<string, string>, RegExp, string][] = [
      [[], {}, /SERVICE_URL is required/, 'missing --service-url'],
      [['--service-url', 'ftp://x/'], { SERVICE_URL: 'ftp://x/' }, /SERVICE_URL must be an http/, 'not http'],
      [[...url, '--schedule', '* * *'], { SCHEDULE: '* * *' }, /SCHEDULE must be a cron/, 'schedule'],
      [
        [...url, '--output-file', 'relative.txt'],
        { OUTPUT_FILE: 'relative.txt' },
        /OUTPUT_FILE must be an absolute file path/,
        'relative output',
      ],
      // It would become `BindPaths=/tmp:/etc:rbind`: the host's /tmp mounted over /etc for the agent.
      [
        [...url, '--output-file', '/tmp:/etc:rbind/x'],
        { OUTPUT_FILE: '/tmp:/etc:rbind/x' },
        /OUTPUT_FILE must be an absolute file path of letters, digits and \._-\/ without \.\./,
        'a colon in the output path',
      ],
      [
        [...url, '--output-file', '/root/../etc/x'],
        { OUTPUT_FILE: '/root/../etc/x' },
        /without \.\./,
        '.. in it',
      ],
      [
        [...url, '--request-timeout-ms', '2s'],
        { REQUEST_TIMEOUT_MS: '2s' },
        /REQUEST_TIMEOUT_MS must be a whole number/,
        'timeout',
      ],
      [[...url, '--log-level', 'loud'], { LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/, 'log level'],
      // Each setting is a line of agent.env: a CRLF file's \r must not reach it (nor pass as a cron field).
      [
        [...url, '--schedule', '* * * * *\r'],
        { SCHEDULE: '* * * * *\r' },
        /^random-number-agent: invalid configuration: SCHEDULE must be on one line$/m,
        'a line break',
      ],
      [
        [...url, '--extra-ca-certs', '/nonexistent/ca.pem'],
        { SERVICE_CA_FILE: '/nonexistent/ca.pem' },
        /SERVICE_CA_FILE must be a readable file of PEM CA certificates .*ENOENT/,
        'a CA file that is not there',
      ],
      // None on purpose (docs/agent.md): a token on a command line ends up in SSM's command history.
      [
        [...url, '--api-token', 'x'.repeat(40)],
        { API_TOKEN: 'x'.repeat(40) },
        /unknown setting --api-token; known: --service-url, /,
        'an --api-token flag',
      ],
      [
        [...url, '--bogus', '1'],
        {},
        /unknown setting --bogus; known: --service-url, --schedule, (?!.*--service-ca-file)/,
        'unknown flag',
      ],
    ];
    for (const [args, env, message, what] of bad) {
      const run = install(['--bundle', AGENT_BUNDLE, ...args, '--prefix', prefix]);
      t.equal(run.code, 78, `${what}: exit 78, the agent's EX_CONFIG`);
      t.match(run.stderr, message, `${what}: says what is wrong`);
      t.match(run.stderr, /nothing was changed/, `${what}: and that nothing was changed`);
      t.notOk(existsSync(prefix), `${what}: nothing created`);
      if (what === 'an --api-token flag') {
        t.notOk(`${run.stdout}${run.stderr}`.includes('x'.repeat(40)), `${what}: the token is not echoed`);
      }
      if (/^unknown setting/.test(message.source)) continue;
      // The same words the agent itself says when it starts with that setting.
      const agent = spawnSync(process.execPath, [AGENT_BUNDLE], {
        env: {
          PATH: process.env.PATH,
          ...(args[0] === '--service-url' ? { SERVICE_URL: args[1] } : {}),
          ...env,
        },
        encoding: 'utf8',
        timeout: 10_000,
      });
      t.equal(run.stderr.split('\n')[0], agent.stderr.trim(), `${what}: the agent's own line`);
    }
  },
);

t.test('--help prints the usage', async (t) => {
  const run = install(['--help']);
  t.equal(run.code, 0, 'exit 0');
  t.match(run.stderr, /install\.sh --bundle FILE \[--sha256 HEX\] --service-url URL/, 'usage line');
});

t.test('the installed bundle runs from its new home, far from any node_modules', async (t) => {
  // Not under the checkout (t.testdir is), so Node cannot find /work/.../node_modules by walking up.
  const prefix = mkdtempSync(join(tmpdir(), 'agent-install-'));
  t.teardown(() => rmSync(prefix, { recursive: true, force: true }));
  t.equal(
    install(['--bundle', AGENT_BUNDLE, '--service-url', 'http://x/', '--prefix', prefix]).code,
    0,
    'installed',
  );
  const service = await startService(t);
  const output = join(prefix, 'root', 'randomNumber.txt');
  const agent = startAgent(
    t,
    { SERVICE_URL: service.url, SCHEDULE: '*/1 * * * * *', OUTPUT_FILE: output },
    join(prefix, 'opt/random-number-agent/ec2-agent.mjs'),
  );
  t.match(await agent.waitForPoll(), { outcome: 'ok' }, 'a number, from the bundle alone');
  const lines = await fileLines(output);
  t.ok(lines.length >= 1 && lines.every((l) => LINE.test(l)), 'written in the file format');
});
