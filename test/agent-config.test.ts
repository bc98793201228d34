import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { checkSettings, cronProblem, loadConfig } from '../ec2-agent/config.ts';
import { AGENT_BUNDLE } from './helpers/agent.ts';
import { json, startProcess } from './helpers/process.ts';
import { selfSignedCa } from './helpers/tls.ts';

const URL_OK = { SERVICE_URL: 'http://127.0.0.1:9/' };

t.test('defaults: schedule every minute, /root/randomNumber.txt, 20 s, info', async (t) => {
  t.same(
    loadConfig(URL_OK),
    {
      serviceUrl: 'http://127.0.0.1:9/',
      schedule: '* * * * *',
      outputFile: '/root/randomNumber.txt',
      apiToken: undefined,
      apiTokenParameter: undefined,
      serviceCaFile: undefined,
      serviceCa: undefined,
      requestTimeoutMs: 20_000,
      logLevel: 'info',
    },
    "every default; the schedule every minute, not the old design's `1 * * * *` (hourly)",
  );
});

t.test('accepts what it should', async (t) => {
  const config = loadConfig({
    SERVICE_URL: 'https://random-number.example.com',
    SCHEDULE: '*/5 * * * * *',
    OUTPUT_FILE: '/var/lib/agent/n.txt',
    API_TOKEN: 'abc-123-0123456789abcdef0123456789ab',
    REQUEST_TIMEOUT_MS: '30000',
    LOG_LEVEL: 'debug',
  });
  t.match(
    config,
    { schedule: '*/5 * * * * *', apiToken: 'abc-123-0123456789abcdef0123456789ab', requestTimeoutMs: 30_000 },
    'all read',
  );
  t.equal(
    loadConfig({ ...URL_OK, API_TOKEN_PARAMETER: '/random-number/api-token' }).apiTokenParameter,
    '/random-number/api-token',
    'parameter name',
  );
  t.equal(loadConfig({ ...URL_OK, SCHEDULE: '' }).schedule, '* * * * *', 'empty means default');
  t.equal(loadConfig({ ...URL_OK, LOG_LEVEL: 'Warn' }).logLevel, 'warn', 'LOG_LEVEL in any case');
  for (const ok of ['* * * * *', '0 */2 * * *', '*/1 * * * * *', '30 * * * * 1-5']) {
    t.equal(cronProblem(ok), undefined, `cron ok: ${ok}`);
  }
  for (const bad of [
    '* * * *',
    '* * * * * * *',
    '61 * * * *',
    'every minute',
    '2030-01-01 10:00',
    '@hourly',
  ]) {
    t.type(cronProblem(bad), 'string', `cron refused: ${bad}`);
  }
  t.equal(cronProblem('hourly'), 'has 1 field', 'one field: counted in the singular');
  t.equal(cronProblem('* *'), 'has 2 fields', 'two: the plural');
});

t.test(
  'SERVICE_CA_FILE: a PEM file of certificates, read once at start; --check shows its path',
  async (t) => {
    const dir = t.testdir();
    const ca = selfSignedCa(dir);
    const config = loadConfig({ ...URL_OK, SERVICE_CA_FILE: ca });
    t.equal(config.serviceCaFile, ca, 'the path, for the start line');
    t.equal(config.serviceCa, readFileSync(ca, 'utf8'), 'the PEM, for the poller');
    t.match(
      checkSettings({ ...URL_OK, SERVICE_CA_FILE: ca }, ['SERVICE_CA_FILE']),
      `\nSERVICE_CA_FILE=${ca}\n`,
      '`--check SERVICE_CA_FILE` (what install.sh runs) accepts it and prints the path, not the PEM',
    );
  },
);

t.test('--check never prints the token, and refuses API_TOKEN as a setting given by name', async (t) => {
  const token = 'x'.repeat(40);
  const printed = checkSettings({ ...URL_OK, API_TOKEN: token }, []);
  t.match(printed, /^SERVICE_URL=http:\/\/127\.0\.0\.1:9\/$/m, 'the other settings are printed');
  t.notMatch(printed, /^API_TOKEN=/m, 'no API_TOKEN= line: install.sh writes these lines into agent.env');
  t.notOk(printed.includes(token), 'the token appears nowhere in the output');
  // install.sh has no --api-token on purpose (docs/agent.md): a secret on a command line ends up in SSM's
  // command history. Accepted, the flag's token would also be dropped without a word.
  t.throws(
    () => checkSettings({ ...URL_OK, API_TOKEN: token }, ['API_TOKEN']),
    { name: 'ConfigError', message: /^unknown setting --api-token; known: --service-url, / },
    'API_TOKEN named as a given setting: unknown, like a misspelt flag',
  );
});

const BAD: [Record<string, string>, RegExp, string][] = [
  [{}, /SERVICE_URL is required/, 'SERVICE_URL missing'],
  [{ SERVICE_URL: 'ftp://x' }, /SERVICE_URL must be an http/, 'SERVICE_URL not http'],
  [{ SERVICE_URL: 'not a url' }, /SERVICE_URL must be an http/, 'SERVICE_URL not a URL'],
  [
    { SERVICE_URL: 'https://poller:s3cret-pw@random-number.example.com/' },
    /^(?!.*s3cret-pw).*SERVICE_URL must not carry a user name or password/,
    'SERVICE_URL with user:password, the password not echoed',
  ],
  [{ ...URL_OK, SCHEDULE: '1 2 3' }, /SCHEDULE must be a cron expression/, 'SCHEDULE too short'],
  [{ ...URL_OK, SCHEDULE: '99 * * * *' }, /SCHEDULE must be a cron expression/, 'SCHEDULE out of range'],
  [
    { ...URL_OK, REQUEST_TIMEOUT_MS: 'soon' },
    /REQUEST_TIMEOUT_MS must be a whole number/,
    'timeout not a number',
  ],
  [
    { ...URL_OK, REQUEST_TIMEOUT_MS: '5' },
    /REQUEST_TIMEOUT_MS must be a whole number from 100/,
    'timeout too small',
  ],
  [
    { ...URL_OK, REQUEST_TIMEOUT_MS: '600001' },
    /REQUEST_TIMEOUT_MS must be a whole number from 100 to 600000 \(got "600001"\)/,
    'timeout above 10 minutes',
  ],
  [{ ...URL_OK, LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/, 'LOG_LEVEL'],
  [{ ...URL_OK, API_TOKEN: 'has space' }, /API_TOKEN must be a Bearer token: letters, digits/, 'API_TOKEN'],
  [
    { ...URL_OK, API_TOKEN: `${'a'.repeat(64)}\r\n` },
    /API_TOKEN must be a Bearer token.*\(this one ends in white space, a line end perhaps: remove it\)/,
    'API_TOKEN with a line end',
  ],
  [
    { ...URL_OK, API_TOKEN_PARAMETER: 'bad name!' },
    /API_TOKEN_PARAMETER must be an SSM parameter name/,
    'parameter',
  ],
  [
    { ...URL_OK, SERVICE_CA_FILE: '/nonexistent/ca.pem' },
    /SERVICE_CA_FILE must be a readable file of PEM CA certificates .*certs\/ca\.crt.*: ENOENT/,
    'SERVICE_CA_FILE missing',
  ],
  [
    { ...URL_OK, SERVICE_CA_FILE: import.meta.dirname },
    /SERVICE_CA_FILE must be a readable file of PEM CA certificates .*: EISDIR/,
    'SERVICE_CA_FILE a folder',
  ],
  [
    // This very file: readable, but no certificate in it.
    { ...URL_OK, SERVICE_CA_FILE: import.meta.filename },
    /SERVICE_CA_FILE must be a readable file of PEM CA certificates .*: no PEM certificate in it/,
    'SERVICE_CA_FILE without a certificate',
  ],
  [
    { ...URL_OK, OUTPUT_FILE: '/proc/random-number/n.txt' },
    /OUTPUT_FILE must be an absolute file path .*, outside \/proc,/,
    'OUTPUT_FILE under /proc (making its folder there would spin forever)',
  ],
  [
    { ...URL_OK, API_TOKEN: 'x'.repeat(32), API_TOKEN_PARAMETER: '/p' },
    /API_TOKEN and API_TOKEN_PARAMETER are both set/,
    'both',
  ],
];

t.test('loadConfig: each bad variable is named', async (t) => {
  for (const [env, message, what] of BAD)
    t.throws(() => loadConfig(env), { name: 'ConfigError', message }, what);
  t.throws(
    () => loadConfig({ ...URL_OK, OUTPUT_FILE: 'a\0b' }),
    { message: /OUTPUT_FILE must be an absolute file path/ },
    'OUTPUT_FILE',
  );
  t.throws(
    () => loadConfig({ ...URL_OK, API_TOKEN: 'secret value' }),
    { message: /^(?!.*secret value)/ },
    'a bad token value is never echoed',
  );
});

t.test(
  'the bundle: a bad value → one stderr line naming it, exit 78 (EX_CONFIG), no stack trace',
  async (t) => {
    await Promise.all(
      BAD.map(async ([env, message, what]) => {
        const agent = startProcess(t, process.execPath, [AGENT_BUNDLE], {
          env: { OUTPUT_FILE: '/tmp/unused/n', ...env },
        });
        const { code } = await agent.exited;
        t.equal(code, 78, `${what}: exit 78, which the unit does not restart`);
        t.equal(agent.stderr.length, 1, `${what}: one stderr line`);
        t.match(agent.stderr[0], message, `${what}: names the variable`);
        t.match(agent.stderr[0], /^random-number-agent: /, `${what}: says who is talking`);
        t.notMatch(agent.stderr.join('\n'), /\n\s+at /, `${what}: no stack trace`);
      }),
    );
  },
);

// Each would pass a rule that did not look at the last character or at empty and `.` segments: systemd
// ignores a BindPaths= it cannot read as an absolute path (`:` separates its options), so the agent
// could not write; and /./proc, //proc are /proc, where making the folder spins forever.
const BAD_OUTPUT = [
  ...['/root/numbers.txt:', '/root/numbers.txt ', '/root/n*', '/root/n%', '/root/n\\', '/root/nä'],
  ...[
    '/./proc/x/y',
    '//proc/x/y',
    '/proc/x',
    '/proc',
    '/root/./n.txt',
    '/root//n.txt',
    '/root/.',
    '/root/..',
  ],
  ...['/root/../etc/x', '/root/', '/', 'root/n.txt'],
];
const GOOD_OUTPUT = [
  '/root/randomNumber.txt',
  '/var/lib/random-number/n-1_2.txt',
  '/procfs/n',
  '/root/.n',
  '/r/...',
];
const OUTPUT_RULE =
  'OUTPUT_FILE must be an absolute file path of letters, digits and ._-/ without .., . or empty segments, outside /proc, not ending in /, e.g. /root/randomNumber.txt';

t.test('OUTPUT_FILE: exactly what its message says, the rest refused', async (t) => {
  for (const path of GOOD_OUTPUT)
    t.equal(loadConfig({ ...URL_OK, OUTPUT_FILE: path }).outputFile, path, path);
  for (const path of BAD_OUTPUT) {
    t.throws(
      () => loadConfig({ ...URL_OK, OUTPUT_FILE: path }),
      { message: `invalid configuration: ${OUTPUT_RULE} (got ${JSON.stringify(path)})` },
      `refused, in those words: ${JSON.stringify(path)}`,
    );
  }
});

t.test('the bundle: `--check OUTPUT_FILE` (what install.sh runs) refuses such paths', async (t) => {
  /** The agent bundle's `--check OUTPUT_FILE`, as a process: its exit code and output. */
  async function check(path: string) {
    const agent = startProcess(t, process.execPath, [AGENT_BUNDLE, '--check', 'OUTPUT_FILE'], {
      env: { ...URL_OK, OUTPUT_FILE: path },
    });
    return { ...(await agent.exited), stdout: agent.stdout, stderr: agent.stderr };
  }
  const good = await check('/var/lib/random-number/n.txt');
  t.equal(good.code, 0, 'a good path: exit 0');
  t.ok(good.stdout.includes('OUTPUT_FILE=/var/lib/random-number/n.txt'), 'printed as the agent would use it');
  // What the audit found passing --check: a colon, an ä, the two ways around the /proc guard, a `.` segment.
  for (const path of ['/root/numbers.txt:', '/root/nä', '/./proc/x/y', '//proc/x/y', '/root/./n.txt']) {
    const { code, stdout, stderr } = await check(path);
    t.equal(code, 78, `${JSON.stringify(path)}: exit 78`);
    t.same(
      stderr,
      [`random-number-agent: invalid configuration: ${OUTPUT_RULE} (got ${JSON.stringify(path)})`],
      `${JSON.stringify(path)}: one line, the rule`,
    );
    t.same(stdout, [], `${JSON.stringify(path)}: no settings printed`);
  }
});

t.test(
  'the bundle: an argument other than --check is refused, and nothing is polled or written',
  async (t) => {
    const dir = t.testdir();
    for (const arg of ['--chek', 'check', '-c']) {
      const agent = startProcess(t, process.execPath, [AGENT_BUNDLE, arg, 'SERVICE_URL'], {
        env: { ...URL_OK, OUTPUT_FILE: `${dir}/n.txt`, SCHEDULE: '* * * * * *' },
      });
      t.equal((await agent.exited).code, 78, `${arg}: exit 78 (EX_CONFIG), not started`);
      t.same(
        agent.stderr,
        [
          `random-number-agent: unknown argument "${arg}": the agent takes no arguments but --check [SETTING ...]; its settings come from the environment (docs/agent.md)`,
        ],
        `${arg}: one line naming it and what the agent takes`,
      );
      t.same(agent.stdout, [], `${arg}: no check output, no start line`);
    }
    t.notOk(existsSync(`${dir}/n.txt`), 'no numbers file was made');
  },
);

t.test('the bundle: an OUTPUT_FILE whose folder cannot be made stops it at start', async (t) => {
  // A regular file where the folder should be: fails for root too (tests may run as root).
  const dir = t.testdir({ 'a-file': 'not a folder' });
  const agent = startProcess(t, process.execPath, [AGENT_BUNDLE], {
    env: { ...URL_OK, OUTPUT_FILE: `${dir}/a-file/n.txt` },
  });
  t.equal((await agent.exited).code, 78, 'exit 78 (EX_CONFIG)');
  t.match(agent.stderr.join('\n'), /OUTPUT_FILE .*a-file\/n.txt cannot be opened/, 'names OUTPUT_FILE');
});

t.test('the bundle: an OUTPUT_FILE that is a folder is refused at start, in one line', async (t) => {
  const dir = t.testdir({ 'a-folder': {} });
  const agent = startProcess(t, process.execPath, [AGENT_BUNDLE], {
    env: { ...URL_OK, OUTPUT_FILE: `${dir}/a-folder`, SCHEDULE: '* * * * * *' },
  });
  t.equal((await agent.exited).code, 78, 'exit 78 (EX_CONFIG): not started, so not restarted');
  t.equal(agent.stderr.length, 1, 'one stderr line');
  t.match(
    agent.stderr[0],
    /^random-number-agent: OUTPUT_FILE .*a-folder cannot be opened for appending .*EISDIR/,
    'says what is wrong with OUTPUT_FILE',
  );
  t.same(
    agent.stdout.filter((l) => json(l).msg === 'poll'),
    [],
    'it never polled',
  );
});
