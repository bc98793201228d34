import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import t, { type Test } from 'tap';
import { readCaCert } from '../scripts/aws/ca-cert.ts';
import { AGENT_BUNDLE, fileLines, LINE } from './helpers/agent.ts';
import { startMoto } from './helpers/moto.ts';
import { nginxFront } from './helpers/nginx.ts';
import { json, startProcess } from './helpers/process.ts';
import { startService } from './helpers/service.ts';
import { DAY_MS, issueWithDates, reissue, tlsCert } from './helpers/tls.ts';

// The TLS path on this machine, every part real: certificates from `make tls-cert`, nginx (Debian's
// package) terminating TLS in front of the built service, the agent configured by the real install.sh
// (under --prefix) with or without the CA, and run on this machine's Node.js as a process whose name
// lookups see DOMAIN at 127.0.0.1 (a private /etc/hosts, bind-mounted in its own mount namespace: the
// machine's own file is never touched). The same through the SSM payloads, under systemd on Node 22:
// test/host-agent-tls.test.ts.

const DOMAIN = 'numbers.random-number.test';
/** An SSM endpoint under DOMAIN: the private CA, made for DOMAIN, may vouch for it too. */
const SSM_HOST = `ssm.${DOMAIN}`;

if (process.getuid?.() !== 0) {
  throw new Error(
    'test/agent-tls-nginx.test.ts runs as root: it mounts a private /etc/hosts for the agent (unshare --mount)',
  );
}
const root = t.testdir();
const certs = join(root, 'certs');
const made = tlsCert(certs, [DOMAIN]);
if (made.status !== 0) throw new Error(`make tls-cert failed: ${made.stderr}`);
const hosts = join(root, 'hosts');
writeFileSync(hosts, `127.0.0.1 localhost ${DOMAIN} ${SSM_HOST}\n`);

const service = await startService(t);
/** nginx on loopback presenting `cert` for DOMAIN's requests, in front of the real service. */
const nginxWith = nginxFront(t, root, DOMAIN, service.port);

/**
 * Installs the agent with the real install.sh under a prefix, with `--extra-ca-certs` as the payloads
 * pass it (the PEM --ca-cert checked and stripped, or `none`), and returns the environment install.sh
 * wrote for systemd, re-rooted under the prefix. The payloads themselves run on the systemd host in
 * test/host-agent-tls.test.ts.
 */
async function install(t: Test, name: string, port: number, caCert: string | 'none', more: string[] = []) {
  const dir = join(root, `install-${name}`);
  mkdirSync(dir, { recursive: true });
  const choice = await readCaCert(caCert);
  let extra = 'none';
  if (choice !== 'none' && choice !== undefined) {
    extra = join(dir, 'extra-ca.pem');
    writeFileSync(extra, choice.pem);
  }
  const prefix = join(dir, 'prefix');
  const run = spawnSync(
    'bash',
    [
      'ec2-agent/install.sh',
      '--bundle',
      AGENT_BUNDLE,
      '--service-url',
      `https://${DOMAIN}:${port}/`,
      '--schedule',
      '*/1 * * * * *',
      '--extra-ca-certs',
      extra,
      ...more,
      '--prefix',
      prefix,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { PATH: process.env.PATH } },
  );
  if (run.status !== 0) throw new Error(`install.sh failed: ${run.stderr}`);
  const env: Record<string, string> = {};
  for (const line of readFileSync(join(prefix, 'etc/random-number-agent/agent.env'), 'utf8').split('\n')) {
    const m = /^([A-Z_0-9]+)="(.*)"$/.exec(line);
    if (m?.[1] && m[2] !== undefined) env[m[1]] = m[2].replace(/\\(["\\])/g, '$1');
  }
  // install.sh wrote absolute paths for the instance: the same files live under the prefix here.
  for (const key of ['SERVICE_CA_FILE', 'OUTPUT_FILE']) {
    if (env[key]) env[key] = join(prefix, env[key]);
  }
  t.comment(`${name}: agent.env ${JSON.stringify(env)}`);
  return env;
}

/** The agent bundle as a real process that resolves DOMAIN (and SSM_HOST) to 127.0.0.1. */
function startAgentHere(t: Test, env: Record<string, string>) {
  return startProcess(
    t,
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /etc/hosts && exec "$@"',
      hosts,
      process.execPath,
      AGENT_BUNDLE,
    ],
    { env },
  );
}

/** startAgentHere, then its start line and its first poll line. */
async function firstPoll(t: Test, env: Record<string, string>) {
  const agent = startAgentHere(t, env);
  const line = await agent.waitForLine((l) => json(l).msg === 'poll', 15_000);
  agent.kill();
  await agent.exited;
  const started = json(agent.stdout.find((l) => json(l).msg === 'started') ?? '');
  return { poll: json(line), started, lines: agent.stdout.map(json) };
}

const good = await nginxWith('good', join(certs, `${DOMAIN}.crt`), join(certs, `${DOMAIN}.key`));

t.test('with --ca-cert: the agent trusts the private CA and writes numbers', async (t) => {
  const env = await install(t, 'with-ca', good.port, join(certs, 'ca.crt'));
  t.ok(env.SERVICE_CA_FILE, 'install.sh gave the agent the CA as SERVICE_CA_FILE');
  t.equal(env.NODE_EXTRA_CA_CERTS, undefined, 'and not to Node as a whole');
  const { poll, started } = await firstPoll(t, env);
  t.equal(
    started.serviceCaFile,
    env.SERVICE_CA_FILE,
    'the start line says which CA it trusts for the service',
  );
  t.match(poll, { outcome: 'ok', attempts: 1 }, 'the poll through nginx over TLS succeeded');
  const lines = await fileLines(env.OUTPUT_FILE ?? '');
  t.ok(lines.length >= 1 && lines.every((l) => LINE.test(l)), `numbers written (${lines.join(' | ')})`);
});

t.test('without --ca-cert: no numbers, and the log names the certificate problem and the fix', async (t) => {
  const env = await install(t, 'without-ca', good.port, 'none');
  t.equal(env.SERVICE_CA_FILE, undefined, 'no CA installed');
  const { poll, started } = await firstPoll(t, env);
  t.equal(started.serviceCaFile, null, 'the start line says there is none');
  t.match(
    poll,
    {
      outcome: 'failed',
      number: null,
      attempts: 1,
      reason:
        /^TLS: the service's certificate is not signed by a CA the agent trusts; .*--ca-cert certs\/ca\.crt/,
    },
    'failed at once (not retried), naming --ca-cert',
  );
  t.same(await fileLines(env.OUTPUT_FILE ?? ''), [], 'nothing written');
});

t.test('a certificate for another name: no numbers, a clear reason', async (t) => {
  // Under DOMAIN: the CA tls-cert made for DOMAIN issues for DOMAIN and its subdomains only.
  const other = `other.${DOMAIN}`;
  const made = tlsCert(certs, [other]);
  t.equal(made.status, 0, 'a certificate for another name from the same CA');
  const nginx = await nginxWith('other', join(certs, `${other}.crt`), join(certs, `${other}.key`));
  const env = await install(t, 'other-name', nginx.port, join(certs, 'ca.crt'));
  const { poll } = await firstPoll(t, env);
  t.match(
    poll,
    {
      outcome: 'failed',
      reason:
        /^TLS: the service's certificate is for another name than SERVICE_URL's host.*ERR_TLS_CERT_ALTNAME_INVALID/,
    },
    'the reason says the name is wrong',
  );
  t.same(await fileLines(env.OUTPUT_FILE ?? ''), [], 'nothing written');
});

t.test(
  "a certificate outside its CA's name constraint: no numbers, a clear reason, not retried",
  async (t) => {
    // A CA from `make tls-cert` for another domain may vouch for that domain alone; a certificate for DOMAIN
    // it signed anyway (tls-cert itself refuses to) fails OpenSSL's check, with an error Node has no name for.
    const elsewhere = join(root, 'certs-elsewhere');
    t.equal(tlsCert(elsewhere, ['elsewhere.test']).status, 0, 'a CA made for elsewhere.test');
    const crt = join(elsewhere, 'outside.crt');
    const key = join(certs, `${DOMAIN}.key`);
    const [caCrt, caKey] = [join(elsewhere, 'ca.crt'), join(elsewhere, 'ca.key')];
    issueWithDates({
      caCrt,
      caKey,
      key,
      host: DOMAIN,
      from: new Date(Date.now() - DAY_MS),
      until: new Date(Date.now() + DAY_MS),
      out: crt,
    });
    const nginx = await nginxWith('outside', crt, key);
    const env = await install(t, 'outside-constraint', nginx.port, caCrt);
    const { poll } = await firstPoll(t, env);
    t.match(
      poll,
      {
        outcome: 'failed',
        attempts: 1,
        reason:
          /^TLS: certificate verification failed; .*--ca-cert .*\(UNSPECIFIED: permitted subtree violation\)$/,
      },
      'called TLS with its own words, and not retried as a network error',
    );
    t.same(await fileLines(env.OUTPUT_FILE ?? ''), [], 'nothing written');
  },
);

t.test('an expired certificate: no numbers, a clear reason', async (t) => {
  const expired = join(root, 'expired.crt');
  reissue(certs, DOMAIN, -30, -1, expired);
  const nginx = await nginxWith('expired', expired, join(certs, `${DOMAIN}.key`));
  const env = await install(t, 'expired', nginx.port, join(certs, 'ca.crt'));
  const { poll } = await firstPoll(t, env);
  t.match(
    poll,
    { outcome: 'failed', reason: /^TLS: the service's certificate has expired; renew it .*CERT_HAS_EXPIRED/ },
    'the reason says it expired and how to renew',
  );
  t.same(await fileLines(env.OUTPUT_FILE ?? ''), [], 'nothing written');
});

t.test('a certificate not valid yet: no numbers, a clear reason', async (t) => {
  // What a CA whose clock runs ahead issues (or what this machine sees when its own clock is behind):
  // a certificate from the right CA for the right name whose notBefore is tomorrow.
  const early = join(root, 'not-yet-valid.crt');
  reissue(certs, DOMAIN, 1, 30, early);
  const nginx = await nginxWith('not-yet-valid', early, join(certs, `${DOMAIN}.key`));
  const env = await install(t, 'not-yet-valid', nginx.port, join(certs, 'ca.crt'));
  const { poll } = await firstPoll(t, env);
  t.match(
    poll,
    {
      outcome: 'failed',
      number: null,
      attempts: 1,
      reason: /^TLS: the service's certificate is not valid yet; check the clocks .*CERT_NOT_YET_VALID/,
    },
    'failed at once (not retried), the reason says it is not valid yet and to check the clocks',
  );
  t.same(await fileLines(env.OUTPUT_FILE ?? ''), [], 'nothing written');
});

t.test(
  'the CA is trusted for the service only: the token read from an SSM endpoint it signed fails',
  async (t) => {
    // moto behind nginx with a certificate from the same private CA, at SSM_HOST; the service requires
    // the token held there. A process-wide NODE_EXTRA_CA_CERTS (the old design) would let the read through.
    const moto = await startMoto(t);
    const parameter = '/random-number/scoped-token';
    const token = 'scoped-token-2718281828459045235360';
    const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
    const ssm = new SSMClient({ endpoint: moto.endpoint, region: 'us-east-1', credentials });
    await ssm.send(new PutParameterCommand({ Name: parameter, Value: token, Type: 'SecureString' }));
    ssm.destroy();
    t.equal(tlsCert(certs, [SSM_HOST]).status, 0, `a certificate for ${SSM_HOST} from the same CA`);
    const motoPort = Number(new URL(moto.endpoint).port);
    const crt = (name: string) => join(certs, `${SSM_HOST}.${name}`);
    const ssmTls = await nginxFront(t, root, SSM_HOST, motoPort)('ssm', crt('crt'), crt('key'));
    const authed = await startService(t, { API_TOKEN: token });
    const front = await nginxFront(
      t,
      root,
      DOMAIN,
      authed.port,
    )('authed', join(certs, `${DOMAIN}.crt`), join(certs, `${DOMAIN}.key`));
    const env = await install(t, 'ssm-scope', front.port, join(certs, 'ca.crt'), [
      '--api-token-parameter',
      parameter,
      '--aws-region',
      'us-east-1',
    ]);
    const aws = { ...moto.env, AWS_ENDPOINT_URL: `https://${SSM_HOST}:${ssmTls.port}` };

    const agent = startAgentHere(t, { ...env, ...aws });
    const { code } = await agent.exited;
    t.comment(`the agent said: ${agent.stderr.join(' | ')}`);
    t.equal(code, 1, 'exit 1, which systemd retries as it retries every failed token read (not 78)');
    t.match(
      agent.stderr.join('\n'),
      /^random-number-agent: cannot read the API token from SSM parameter \/random-number\/scoped-token \(API_TOKEN_PARAMETER\): .*(certificate|UNABLE_TO_VERIFY)/i,
      "the SSM endpoint signed by the service's CA is not trusted: a certificate error",
    );
    t.notMatch([...agent.stdout, ...agent.stderr].join('\n'), token, 'the token is in no output line');

    // The same install with the CA given to Node as a whole: the read goes through, and the agent
    // warns that the CA now reaches its AWS calls.
    const extra = { ...env, ...aws, NODE_EXTRA_CA_CERTS: env.SERVICE_CA_FILE ?? '' };
    const { poll, started, lines } = await firstPoll(t, extra);
    t.match(started, { auth: 'bearer (SSM parameter)' }, 'with NODE_EXTRA_CA_CERTS the token is read');
    t.match(poll, { outcome: 'ok' }, 'and accepted by the service over TLS');
    t.match(
      lines.filter((l) => l.level === 40),
      [{ msg: /^NODE_EXTRA_CA_CERTS is set: .*AWS calls included; SERVICE_CA_FILE/ }],
      'one warn line: NODE_EXTRA_CA_CERTS reaches the AWS calls; SERVICE_CA_FILE is for the service',
    );
  },
);
