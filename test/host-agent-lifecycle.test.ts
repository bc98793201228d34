import { readFileSync, statSync } from 'node:fs';
import t from 'tap';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { buildDelivery, readAgentFiles, sha256 } from '../scripts/aws/delivery.ts';
import { LINE } from './helpers/agent.ts';
import { bootHost } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, FAST_SCHEDULE, fastAgent, runPayloads } from './helpers/host-agent.ts';
import { eventually } from './helpers/process.ts';
import { startService } from './helpers/service.ts';

// The whole life of the agent on a real systemd host, installed exactly as provision-ec2 installs it:
// the SSM payloads run as root with sh. One scenario, in the order a user lives it.
const OUTPUT = AGENT_DEFAULTS.outputFile; // /root/randomNumber.txt
// MemoryMax=256M in ec2-agent/random-number-agent.service.
const MEMORY_MAX = 256 * 2 ** 20;

// A host boots in seconds, but a busy 2-core machine can stretch a file past tap's default 120 s.
t.setTimeout(300_000);

t.test(
  'installed through the payloads, the agent polls, survives upgrade, crash, stop and reboot',
  async (t) => {
    const service = await startService(t);
    const host = await bootHost(t);
    const url = `${service.url}/`;

    // --- install: the files `npm run agent-command` writes, run in order ---------------------------
    const payloads = await agentCommandPayloads(t, fastAgent(url));
    const installed = await runPayloads(host, payloads);
    const last = installed.at(-1);
    t.equal(installed.length, payloads.length, 'every payload ran');
    t.equal(last?.code, 0, `the install payload exits 0 (${last?.stderr.trim()})`);
    // The line alone: at info, install.sh ends as soon as the agent logs `started`, not after its 20 s wait.
    t.match(
      last?.stdout,
      new RegExp(`^${AGENT}: active$`, 'm'),
      'install.sh reports the agent active, from its started line',
    );
    t.equal(
      (await host.exec(['systemctl', 'is-active', AGENT])).stdout.trim(),
      'active',
      'systemctl is-active',
    );
    t.equal(
      (await host.exec(['systemctl', 'is-enabled', AGENT])).stdout.trim(),
      'enabled',
      'enabled at boot',
    );
    const first = await host.linesAtLeast(OUTPUT, 2, 10_000);
    t.ok(
      first.every((line) => LINE.test(line)),
      `numbers from the real service in ${OUTPUT} (${first[0]})`,
    );

    // --- hardening, measured by systemd itself ------------------------------------------------------
    const verify = await host.exec(['systemd-analyze', 'verify', `/etc/systemd/system/${AGENT}.service`]);
    t.equal(verify.code, 0, 'systemd-analyze verify exits 0');
    t.equal(verify.stderr.trim(), '', 'systemd-analyze verify has nothing to say');
    const security = await host.exec(['systemd-analyze', 'security', AGENT, '--no-pager']);
    const score = Number(/Overall exposure level for .*: (\d+\.\d+)/.exec(security.stdout)?.[1]);
    t.ok(score <= 2.0, `systemd-analyze security scores ${score}, 2.0 or lower (OK)`);

    // --- resource caps, as systemd reads the installed unit, with room over what the agent uses -------
    // Not enforced here: these machines mount cgroup v1, whose controllers systemd-nspawn gives the
    // container read-only, so systemd inside limits nothing (docs/testing.md). Only what it reads is checked.
    const caps = await host.unit(AGENT, ['MemoryMax', 'MemorySwapMax', 'MemoryHigh', 'TasksMax', 'MainPID']);
    t.same(
      [caps.MemoryMax, caps.MemorySwapMax, caps.MemoryHigh, caps.TasksMax],
      [String(MEMORY_MAX), '0', 'infinity', '64'],
      'systemd reads MemoryMax=256M, MemorySwapMax=0, TasksMax=64 and no MemoryHigh= from the unit',
    );
    const status = await host.run(['cat', `/proc/${caps.MainPID}/status`]);
    const peak = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024;
    const threads = Number(/^Threads:\s+(\d+)$/m.exec(status)?.[1]);
    t.ok(
      peak > 0 && peak * 2 <= MEMORY_MAX,
      `the agent's peak so far, ${(peak / 2 ** 20).toFixed(0)} MiB resident, is at most half of MemoryMax`,
    );
    t.ok(threads > 0 && threads * 4 <= 64, `its ${threads} threads are at most a quarter of TasksMax`);

    // --- upgrade: the payloads again with a new bundle; nothing written before is lost -------------
    const owner = statSync(`${host.dir}${OUTPUT}`).uid;
    t.not(owner, 0, 'the file belongs to the agent user, not root');
    const beforeUpgrade = host.lines(OUTPUT);
    const { MainPID: oldPid } = await host.unit(AGENT, ['MainPID']);
    const files = await readAgentFiles();
    const bundle = Buffer.concat([files.bundle, Buffer.from('\n// upgraded\n')]);
    const upgrade = buildDelivery({
      ...files,
      bundle,
      settings: { SERVICE_URL: url, SCHEDULE: FAST_SCHEDULE },
    });
    const upgraded = await runPayloads(
      host,
      upgrade.commands.map((c) => c.commands),
    );
    t.equal(upgraded.at(-1)?.code, 0, `the upgrade's install exits 0 (${upgraded.at(-1)?.stderr.trim()})`);
    t.equal(
      sha256(readFileSync(`${host.dir}/opt/${AGENT}/ec2-agent.mjs`)),
      sha256(bundle),
      'the new bundle is the one installed',
    );
    t.not((await host.unit(AGENT, ['MainPID'])).MainPID, oldPid, 'the agent was restarted on the new bundle');
    const afterUpgrade = await host.linesAtLeast(OUTPUT, beforeUpgrade.length + 2, 10_000);
    t.same(afterUpgrade.slice(0, beforeUpgrade.length), beforeUpgrade, 'every earlier line is kept');
    t.equal(statSync(`${host.dir}${OUTPUT}`).uid, owner, 'and so is its owner');

    // --- crash: kill -9 → systemd starts it again; no half line -----------------------------------
    const { MainPID: crashPid } = await host.unit(AGENT, ['MainPID']);
    await host.run(['sh', '-c', `kill -9 ${crashPid}`]);
    const restarted = await eventually('a restart after kill -9', async () => {
      const props = await host.unit(AGENT, ['MainPID', 'NRestarts', 'ActiveState']);
      return props.ActiveState === 'active' && props.MainPID !== '0' && props.MainPID !== crashPid
        ? props
        : undefined;
    });
    t.equal(restarted.NRestarts, '1', 'systemd restarted it once (Restart=always)');
    const beforeCrash = host.lines(OUTPUT).length;
    const afterCrash = await host.linesAtLeast(OUTPUT, beforeCrash + 2, 15_000);
    t.ok(host.read(OUTPUT)?.endsWith('\n'), 'the file ends with a whole line');
    t.same(
      afterCrash.filter((line) => !LINE.test(line)),
      [],
      'every line is a whole "<timestamp> <number>" line',
    );

    // --- stop, then reboot ------------------------------------------------------------------------
    await host.run(['systemctl', 'stop', AGENT]);
    const stopped = await host.unit(AGENT, ['ActiveState', 'Result', 'ExecMainStatus']);
    t.equal(stopped.ActiveState, 'inactive', 'systemctl stop stops it');
    t.equal(stopped.Result, 'success', 'the stop is clean (Result=success)');
    const beforeReboot = host.lines(OUTPUT);
    await host.reboot();
    t.equal(
      (await host.exec(['systemctl', 'is-active', AGENT])).stdout.trim(),
      'active',
      'active after a reboot',
    );
    const afterReboot = await host.linesAtLeast(OUTPUT, beforeReboot.length + 1, 10_000);
    t.same(
      afterReboot.slice(0, beforeReboot.length),
      beforeReboot,
      'the lines from before the reboot are kept',
    );
  },
);
