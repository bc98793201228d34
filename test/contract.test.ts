import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { AGENT_DEFAULTS, logPoll, parsePollLine, TOKEN_PATTERN } from '../lib/contract.ts';
import { AGENT_BUNDLE } from './helpers/agent.ts';
import { binWith, closedPort, deployScript, kubeconfig } from './helpers/kustomize.ts';

// lib/contract.ts is the one home of what the parts share; the shell scripts that cannot import it
// must agree with it, and the line the agent writes must be the line the readers parse.

t.test('install.sh applies the same agent defaults as the agent and the CLIs', async (t) => {
  const prefix = t.testdir();
  const run = spawnSync(
    'bash',
    ['ec2-agent/install.sh', '--bundle', AGENT_BUNDLE, '--service-url', 'http://x/', '--prefix', prefix],
    { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { PATH: process.env.PATH } },
  );
  t.equal(run.status, 0, `install.sh --prefix exits 0 ${run.stderr}`);
  const env = readFileSync(join(prefix, 'etc/random-number-agent/agent.env'), 'utf8');
  t.match(env, `SCHEDULE="${AGENT_DEFAULTS.schedule}"`, 'schedule');
  t.match(env, `OUTPUT_FILE="${AGENT_DEFAULTS.outputFile}"`, 'output file');
  t.match(env, `REQUEST_TIMEOUT_MS="${AGENT_DEFAULTS.requestTimeoutMs}"`, 'request timeout');
});

t.test('deploy-knative.sh accepts exactly the tokens the service and agent accept', async (t) => {
  // The script's own Secret step, run for each token: it refuses a malformed one before touching the
  // cluster; a good one gets past the check and fails at kubectl (a loopback port nobody listens on).
  const env = {
    PATH: binWith(t, ['bash', 'dirname', 'kubectl']),
    KUBECONFIG: kubeconfig(t, `https://127.0.0.1:${await closedPort()}`),
    KUBECACHEDIR: t.testdir(),
  };
  const long = '0123456789abcdef0123456789abcdef';
  // Not '': an empty API_TOKEN means "unset" to the script (keep the Secret; test/kustomize-deploy.test.ts).
  for (const token of [
    long,
    `${long}a-b_c.d~+/`,
    `${long}==`,
    'a'.repeat(31),
    'abc123',
    'pad==',
    `${long}=b`,
    `${long}!`,
    'with space',
    'é',
    '"q"',
  ]) {
    const r = deployScript(['secret', 'default'], { ...env, API_TOKEN: token });
    const name = JSON.stringify(token);
    t.equal(r.status, 1, `${name}: the Secret step fails here either way (refused, or no cluster)`);
    if (TOKEN_PATTERN.test(token)) {
      t.notMatch(r.stderr, /must be a Bearer token/, `${name}: accepted by the contract and by the script`);
      t.match(
        r.stderr,
        /connection to the server 127\.0\.0\.1:\d+ was refused/,
        `${name}: it got as far as kubectl`,
      );
    } else {
      t.match(
        r.stderr,
        /^deploy-knative: API_TOKEN must be a Bearer token: /,
        `${name}: refused by the contract and by the script, before kubectl`,
      );
    }
  }
});

t.test('every poll line logPoll writes is read back by parsePollLine; other lines are not', async (t) => {
  const lines: string[] = [];
  const write = (level: string) => (fields: object, msg: string) =>
    lines.push(JSON.stringify({ level, time: Date.now(), ...fields, msg }));
  const logger = { info: write('info'), warn: write('warn'), error: write('error') };
  const base = { scheduledAt: new Date().toISOString(), driftMs: 3, latencyMs: 5, attempts: 1, backlog: 0 };
  logPoll(logger, { ...base, outcome: 'ok', number: 42, coldStart: true });
  logPoll(logger, { ...base, outcome: 'failed', number: null, coldStart: null, reason: 'ECONNREFUSED' });
  logPoll(logger, { ...base, outcome: 'write_failed', number: 7, coldStart: false, reason: 'EACCES' });
  logPoll(logger, { ...base, outcome: 'skipped', number: null, coldStart: null, attempts: 0 });
  t.same(
    lines.map((line) => JSON.parse(line).level),
    ['info', 'warn', 'error', 'warn'],
    'the level follows the outcome',
  );
  t.same(
    lines.map((line) => parsePollLine(line)?.outcome),
    ['ok', 'failed', 'write_failed', 'skipped'],
    'each line parses with its outcome',
  );
  t.equal(parsePollLine('{"msg":"started"}'), undefined, 'another message is not a poll line');
  t.equal(parsePollLine('random-number-agent: SCHEDULE ...'), undefined, 'nor is plain text');
  t.equal(
    parsePollLine('{"msg":"poll","scheduledAt":"x"}'),
    undefined,
    'nor is a poll line without an outcome: a reader counting outcomes would count it as one',
  );
});
