import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { fileLines, LINE } from './helpers/agent.ts';
import { json, startForegroundJob } from './helpers/process.ts';

const DEMO = resolve(import.meta.dirname, '../scripts/demo.sh');

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test('the demo: numbers in the file within a period, Ctrl-C stops both children', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  // Its own process group, like a terminal's foreground job, so the test can "press Ctrl-C".
  const demo = startForegroundJob(t, 'bash', [DEMO], {
    env: { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: '0', SCHEDULE: '*/1 * * * * *' },
  });
  const { out, err } = demo;
  // At most 60 s (an event wait: a loaded machine takes longer, a free one returns at once): the file's
  // own check below says whether a number came.
  await Promise.race([demo.waitFor((line) => json(line).outcome === 'ok'), sleep(60_000, 0, { ref: false })]);
  const text = out.join('\n');
  t.match(text, /numbers go to .*data\/randomNumber\.txt/, 'says where the numbers go');
  t.match(text, /tail -f .*data\/randomNumber\.txt/, 'says how to watch them');
  const servicePid = Number(/service .*\(pid (\d+)/.exec(text)?.[1]);
  const agentPid = Number(/agent .*\(pid (\d+)/.exec(text)?.[1]);
  t.ok(alive(servicePid) && alive(agentPid), `both children run (service ${servicePid}, agent ${agentPid})`);

  demo.interrupt();
  const [code] = await demo.exited;
  t.equal(code, 0, `Ctrl-C: the demo exits 0 ${err.join('\n')}`);
  t.notOk(alive(servicePid), 'the service has exited');
  t.notOk(alive(agentPid), 'the agent has exited');
  t.match(out.join('\n'), /demo: stopped/, 'says it stopped');
  const lines = await fileLines(join(dataDir, 'randomNumber.txt'));
  t.ok(lines.length >= 1, `numbers were written (${lines.length})`);
  for (const line of lines) t.match(line, LINE, `valid line: ${line}`);

  // The service's own log: on loopback only (the demo is for this machine), and stopped after the agent.
  const service = (await fileLines(join(dataDir, 'service.log'))).map(json);
  const listening = service.find((l) => l.msg === 'listening');
  t.equal(listening?.address, '127.0.0.1', 'the service listens on 127.0.0.1 only');
  const polls = out.map(json).filter((l) => l.msg === 'poll');
  t.ok(polls.length >= 1, `the agent logged its polls (${polls.length})`);
  t.same(
    polls.filter((l) => l.outcome !== 'ok'),
    [],
    'no poll failed, not even around Ctrl-C (the agent stops before the service)',
  );
  const agentStopped = out.map(json).find((l) => l.msg === 'stopped')?.time;
  const serviceStopping = service.find((l) => String(l.msg).startsWith('shutting down'))?.time;
  t.ok(
    typeof agentStopped === 'number' &&
      typeof serviceStopping === 'number' &&
      agentStopped <= serviceStopping,
    `the agent had stopped (${agentStopped}) before the service was asked to (${serviceStopping})`,
  );
});

t.test('the demo shows the failing process own reason on the terminal', async (t) => {
  const dir = t.testdir();
  const run = async (env: Record<string, string>) => {
    const dataDir = join(dir, Object.keys(env).join('-'));
    const demo = spawn('bash', [DEMO], {
      env: { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    demo.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    demo.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const [code] = await once(demo, 'close');
    return { code, stdout, stderr };
  };
  const [badPort, badSchedule] = await Promise.all([run({ PORT: 'abc' }), run({ SCHEDULE: 'bad' })]);
  t.equal(badPort.code, 1, 'PORT=abc: exit 1');
  t.match(
    badPort.stderr,
    /PORT must be a whole number from 0 to 65535 \(got "abc"\)/,
    "PORT=abc: the service's own line",
  );
  t.notMatch(badPort.stdout, /demo: agent/, 'PORT=abc: no agent was started');
  t.notMatch(badPort.stdout, /stopping|stopped/, 'PORT=abc: no "stopping" for what never started');
  t.equal(badSchedule.code, 1, 'SCHEDULE=bad: exit 1');
  t.match(badSchedule.stderr, /SCHEDULE must be a cron expression/, "SCHEDULE=bad: the agent's own line");
  t.notMatch(badSchedule.stdout, /polling on/, 'SCHEDULE=bad: never claims the agent polls');
  t.notMatch(badSchedule.stderr, /service\.log/, "SCHEDULE=bad: does not point at the service's log");
});

t.test('a closed terminal (SIGHUP, its output gone) still stops both children', async (t) => {
  const dataDir = join(t.testdir(), 'data');
  const demo = spawn('bash', [DEMO], {
    env: { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: '0', SCHEDULE: '*/1 * * * * *' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => demo.kill('SIGKILL'));
  let text = '';
  const pids = await new Promise<number[]>((done) => {
    demo.stdout.on('data', (d: Buffer) => {
      text += d;
      const service = /service .*\(pid (\d+)/.exec(text)?.[1];
      const agent = /agent .*\(pid (\d+)/.exec(text)?.[1];
      if (service && agent) done([Number(service), Number(agent)]);
    });
  });
  t.teardown(() => {
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
  });
  // The terminal is gone: nothing reads the demo's output any more, and it gets SIGHUP.
  demo.stdout.destroy();
  demo.stderr.destroy();
  const exited = once(demo, 'exit');
  demo.kill('SIGHUP');
  await exited;
  // Each child is waited for by the demo before it exits; allow the last one a moment to be reaped.
  for (let i = 0; i < 50 && pids.some(alive); i++) await sleep(100);
  t.same(pids.filter(alive), [], `the service and the agent have exited (pids ${pids.join(', ')})`);
});
