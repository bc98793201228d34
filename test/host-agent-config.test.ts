import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import t from 'tap';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { bootHost, type Host } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, FAST_SCHEDULE, fastAgent, runPayloads } from './helpers/host-agent.ts';
import { startMoto } from './helpers/moto.ts';
import { eventually } from './helpers/process.ts';
import { startService } from './helpers/service.ts';

const STAGING = '/var/lib/random-number-agent/staging';

/** The install.sh the last delivery staged on the host, as a user would rerun it by hand. */
async function stagedInstall(host: Host): Promise<string> {
  const [hash] = (await host.run(['ls', STAGING])).trim().split('\n');
  return `${STAGING}/${hash}`;
}

// A host boots in seconds, but a busy 2-core machine can stretch a file past tap's default 120 s.
t.setTimeout(300_000);

t.test(
  'settings with quotes, backslashes, spaces, $, % and # reach the running agent exactly as given',
  async (t) => {
    const service = await startService(t);
    const host = await bootHost(t);
    // Every layer quotes its own way: the payload's sh, install.sh's flags, agent.env as systemd reads
    // it. None may unquote, expand or cut: `$HOME`, `$(id)` and `%h` stay text, `#` starts no comment.
    // Backslashes before a plain letter, a backslash, a quote and a dollar: systemd unescapes the last three.
    const url = `${service.url}/?q="quoted" 'single'&bs=\\back\\\\two\\"\\$&cost=$HOME&cmd=$(id)&spec=%h#frag`;
    const installed = await runPayloads(host, await agentCommandPayloads(t, fastAgent(url)));
    t.equal(
      installed.at(-1)?.code,
      0,
      `installed, and install.sh saw the agent start ${installed.at(-1)?.stderr.trim()}`,
    );

    // What the agent process was started with: systemd's EnvironmentFile parser decided, not ours.
    const { MainPID } = await host.unit(AGENT, ['MainPID']);
    const environ = await host.run(['sh', '-c', `tr '\\0' '\\n' < /proc/${MainPID}/environ`]);
    const env = Object.fromEntries(
      environ
        .split('\n')
        .filter((line) => line.includes('='))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    t.same(
      {
        SERVICE_URL: env.SERVICE_URL,
        SCHEDULE: env.SCHEDULE,
        OUTPUT_FILE: env.OUTPUT_FILE,
        REQUEST_TIMEOUT_MS: env.REQUEST_TIMEOUT_MS,
        LOG_LEVEL: env.LOG_LEVEL,
      },
      {
        SERVICE_URL: url,
        SCHEDULE: FAST_SCHEDULE,
        OUTPUT_FILE: AGENT_DEFAULTS.outputFile,
        REQUEST_TIMEOUT_MS: String(AGENT_DEFAULTS.requestTimeoutMs),
        LOG_LEVEL: 'info',
      },
      "the agent's environment (/proc/MainPID/environ) holds each setting byte for byte",
    );
    t.equal(env.API_TOKEN_PARAMETER, undefined, 'and no token parameter when none was given');
  },
);

t.test(
  'a bad value: install.sh refuses it in the agent words; at start, systemd does not restart',
  async (t) => {
    const service = await startService(t);
    const host = await bootHost(t);
    const url = `${service.url}/`;
    const installed = await runPayloads(host, await agentCommandPayloads(t, ['--service-url', url]));
    t.equal(installed.at(-1)?.code, 0, 'a good install first');

    const staged = await stagedInstall(host);
    const before = await host.unit(AGENT, ['MainPID', 'ActiveState']);
    const env = host.read('/etc/random-number-agent/agent.env');
    // Five fields: only the agent's cron parser knows minute 61 is wrong, and install.sh asks it.
    const bad = await host.exec([
      'bash',
      `${staged}/install.sh`,
      '--bundle',
      `${staged}/ec2-agent.mjs`,
      '--service-url',
      url,
      '--schedule',
      '61 * * * *',
    ]);
    t.equal(bad.code, 78, 'install.sh exits 78, as the agent does for its configuration');
    t.match(
      bad.stderr,
      /random-number-agent: .*SCHEDULE/,
      "it shows the agent's own message, naming SCHEDULE",
    );
    t.match(bad.stderr, /nothing was changed/, 'and that nothing was changed');
    t.same(await host.unit(AGENT, ['MainPID', 'ActiveState']), before, 'the running agent was left alone');
    t.equal(host.read('/etc/random-number-agent/agent.env'), env, 'and its settings');

    // A bad value that reaches the agent anyway (agent.env edited by hand): exit 78, and no restart.
    await host.run([
      'sed',
      '-i',
      's/^SCHEDULE=.*/SCHEDULE="61 * * * *"/',
      '/etc/random-number-agent/agent.env',
    ]);
    await host.exec(['systemctl', 'restart', AGENT]);
    // systemd decides at the exit: a restart to come shows as activating/auto-restart (for RestartSec=5),
    // so the state recorded with the exit status already says whether one is coming; no need to wait it out.
    const failed = await eventually('the agent to exit', async () => {
      const unit = await host.unit(AGENT, ['ActiveState', 'SubState', 'ExecMainStatus', 'NRestarts']);
      return unit.ExecMainStatus === '0' ? undefined : unit;
    });
    t.equal(failed.ExecMainStatus, '78', 'the agent exited 78 (EX_CONFIG)');
    t.same(
      [failed.ActiveState, failed.SubState],
      ['failed', 'failed'],
      'failed, with no restart scheduled (not auto-restart)',
    );
    t.equal(failed.NRestarts, '0', 'never restarted (RestartPreventExitStatus=78)');
  },
);

t.test(
  'LOG_LEVEL=warn hides the started line: install.sh still tells a start that held from one that failed',
  async (t) => {
    const service = await startService(t);
    const host = await bootHost(t);
    const url = `${service.url}/`;
    const settings = fastAgent(url, '--log-level', 'warn');
    const install = (await runPayloads(host, await agentCommandPayloads(t, settings))).at(-1);
    t.equal(install?.code, 0, `install.sh exits 0 (${install?.stderr.trim()})`);
    t.match(
      install?.stdout,
      /random-number-agent: active \(no started line, .*the same start still running after 20 s: past its configuration and token checks\)/,
      'its success line says what it checked instead of the started line',
    );
    t.equal(
      (await host.exec(['systemctl', 'is-active', AGENT])).stdout.trim(),
      'active',
      'the unit is active',
    );
    const lines = await host.linesAtLeast('/root/randomNumber.txt', 2, 10_000);
    t.ok(lines.length >= 2, 'and numbers are written');
    const journal = await host.run(['journalctl', '-u', AGENT, '-o', 'cat', '--no-pager']);
    t.notMatch(journal, '"msg":"started"', 'no started line was logged: the quiet path was the one taken');

    // A value install.sh's check never sees (an operator's drop-in naming a CA file that is not there)
    // stops the agent at start with 78: the failure is still told, in the agent's words, without waiting.
    const dropIn = `/etc/systemd/system/${AGENT}.service.d`;
    await host.run(['mkdir', '-p', dropIn]);
    await host.run(['sh', '-c', `cat > ${dropIn}/ca.conf`], {
      input: '[Service]\nEnvironment=SERVICE_CA_FILE=/etc/random-number-agent/missing.pem\n',
    });
    const staged = await stagedInstall(host);
    const began = Date.now();
    const bad = await host.exec([
      'bash',
      `${staged}/install.sh`,
      '--bundle',
      `${staged}/ec2-agent.mjs`,
      ...settings,
    ]);
    t.equal(bad.code, 1, 'install.sh exits 1');
    t.match(bad.stderr, /SERVICE_CA_FILE/, "with the agent's own line naming the setting");
    t.match(
      bad.stderr,
      /NOT active: the agent rejected its configuration \(exit 78, not restarted\)/,
      'and exit 78',
    );
    t.ok(Date.now() - began < 15_000, `told in ${Date.now() - began} ms, not after the 20 s wait`);
  },
);

t.test(
  'a token parameter that cannot be read yet is retried until it can, then the agent polls',
  async (t) => {
    const token = 'host-test-token-1234-0123456789abcdef';
    const service = await startService(t, { API_TOKEN: token });
    const moto = await startMoto(t);
    const host = await bootHost(t);
    // What the instance role and the regional endpoint give a real instance: credentials and SSM. Here a
    // drop-in points the agent at the emulator (on this machine's loopback, which the host shares).
    const dropIn = `/etc/systemd/system/${AGENT}.service.d`;
    await host.run(['mkdir', '-p', dropIn]);
    await host.run(['sh', '-c', `cat > ${dropIn}/emulator.conf`], {
      input: `[Service]\nEnvironment=AWS_ENDPOINT_URL=${moto.endpoint} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test\n`,
    });
    // First an agent that started well at info: its started line stays in the unit's journal, and
    // install.sh must not take it for the start it waits for below (it reads this invocation's lines only).
    const atInfo = await agentCommandPayloads(t, fastAgent(`${service.url}/`));
    const good = (await runPayloads(host, atInfo)).at(-1);
    t.equal(good?.code, 0, `a good install first, at info (${good?.stderr.trim()})`);
    t.match(good?.stdout, /random-number-agent: active$/m, 'told by its started line');
    const payloads = await agentCommandPayloads(
      t,
      fastAgent(
        `${service.url}/`,
        '--allow-plain-http', // the service here is plain http on loopback
        '--api-token-parameter',
        '/random-number/host-test/api-token',
        '--region',
        'us-east-1',
        // At warn the agent logs no started line even when it starts well: install.sh must tell this
        // failure (a read that fails, exit 1, and a restart) by the exit, not by a missing line.
        '--log-level',
        'warn',
      ),
    );
    const install = (await runPayloads(host, payloads)).at(-1);
    t.not(install?.code, 0, 'the re-install: install.sh reports that the agent did not start');
    t.match(
      install?.stderr,
      /cannot read the API token from SSM parameter \/random-number\/host-test\/api-token/,
      'with the reason',
    );
    t.match(install?.stderr, /systemd retries every 5 s/, 'and that systemd keeps trying');

    const { InvocationID: first } = await host.unit(AGENT, ['InvocationID']);
    const restarts = await eventually('a second restart', async () => {
      const unit = await host.unit(AGENT, ['NRestarts', 'InvocationID']);
      return Number(unit.NRestarts) >= 2 ? unit : undefined;
    });
    t.ok(Number(restarts.NRestarts) >= 2, `restarted ${restarts.NRestarts} times, and on`);
    // What install.sh relies on above LOG_LEVEL=info: a start that failed is never the same invocation.
    t.not(restarts.InvocationID, first, 'each restart is a new invocation');

    const ssm = new SSMClient({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await ssm.send(
      new PutParameterCommand({
        Name: '/random-number/host-test/api-token',
        Value: token,
        Type: 'SecureString',
      }),
    );
    const lines = await host.linesAtLeast('/root/randomNumber.txt', 2, 20_000);
    t.ok(lines.length >= 2, 'once the parameter exists, the agent starts and polls with the token');
    t.equal((await host.exec(['systemctl', 'is-active', AGENT])).stdout.trim(), 'active', 'and stays active');
  },
);
