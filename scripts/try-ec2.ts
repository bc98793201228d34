import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { paginateListCommands, SSMClient } from '@aws-sdk/client-ssm';
import { runMain } from '../lib/cli.ts';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { ConfigError } from '../lib/errors.ts';
import { bootHost } from '../test/helpers/host.ts';
import { startMoto } from '../test/helpers/moto.ts';
import { startService } from '../test/helpers/service.ts';

/**
 * make try-ec2: the EC2 path with no AWS account. The local AWS emulator stands in for AWS and the test
 * host (a Debian systemd 252 booted with systemd-nspawn) for the instance: iam-bootstrap and
 * provision-ec2 run as they would against AWS, then the Run Command payloads provision-ec2 sent, read
 * back from the emulator, run through `sh` as root on the host, as AWS-RunShellScript runs them.
 * Ctrl-C stops and removes everything it started.
 */
const say = (text: string) => process.stdout.write(`try-ec2: ${text}\n`);
const cleanups: (() => unknown)[] = [];
const scope = { teardown: (fn: () => unknown) => void cleanups.push(fn) };

let stopping: Promise<void> | undefined;
function cleanUp() {
  stopping ??= (async () => {
    say('stopping: the host is powered off and removed, the emulator and the service stopped');
    for (const cleanup of cleanups.reverse()) await cleanup();
    say('stopped; nothing is left running');
  })();
  return stopping;
}
// The test host's own SIGTERM handler exits at once; here a stop must first clean up.
process.removeAllListeners('SIGTERM');
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void cleanUp().then(() => process.exit(0)));
}

/** A CLI of this checkout, as `npm run <name>` runs it, against the emulator; its output shown. */
async function cli(name: string, args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', `scripts/${name}.ts`, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_NO_WARNINGS: '1', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`npm run ${name} failed (exit ${code}): its reason is above`);
}

runMain('try-ec2', () => tryEc2().finally(cleanUp));

async function tryEc2() {
  if (process.getuid?.() !== 0) {
    throw new ConfigError('make try-ec2 needs root: it boots a local systemd host with systemd-nspawn');
  }
  const schedule = process.env.SCHEDULE || AGENT_DEFAULTS.schedule;
  const moto = await startMoto(scope);
  say(`AWS emulator (moto_server) on ${moto.endpoint}: no AWS account, nothing leaves this machine`);
  const service = await startService(scope);
  say(`service on ${service.url}/ (the built bundle; stands in for the Knative Service)`);

  say('npm run iam-bootstrap, as an administrator does once per account:');
  await cli('iam-bootstrap', [], moto.env);
  say(`npm run provision-ec2 -- --service-url ${service.url}/ --schedule '${schedule}':`);
  const provision = ['--service-url', `${service.url}/`, '--schedule', schedule, '--poll-interval-ms', '200'];
  await cli('provision-ec2', provision, moto.env);

  // What SSM would deliver: the commands as the emulator recorded them, oldest first.
  const credentials = { accessKeyId: 'test', secretAccessKey: 'test' }; // the emulator takes any
  const ssm = new SSMClient({ endpoint: moto.endpoint, region: moto.env.AWS_REGION, credentials });
  const sent = [];
  for await (const page of paginateListCommands({ client: ssm }, {})) sent.push(...(page.Commands ?? []));
  sent.sort((a, b) => Number(a.RequestedDateTime) - Number(b.RequestedDateTime));

  say('the emulator runs no command (ec2-results above is for AWS): they run now, in order, on a local host');
  const host = await bootHost(scope);
  say(`the stand-in instance: Debian with systemd 252 under systemd-nspawn, in ${host.dir}`);
  for (const [index, command] of sent.entries()) {
    const result = await host.runShellScript(command.Parameters?.commands ?? []);
    say(`Run Command ${index + 1} of ${sent.length} (${command.Comment}): exit ${result.code}`);
    if (result.code !== 0)
      throw new Error(`the command failed on the host:\n${result.stdout}${result.stderr}`);
  }
  say(
    `the agent is installed; numbers appear here as they land in ${AGENT_DEFAULTS.outputFile} (Ctrl-C stops)`,
  );
  let shown = 0;
  for (;;) {
    const lines = host.lines(AGENT_DEFAULTS.outputFile);
    for (const line of lines.slice(shown)) process.stdout.write(`${line}\n`);
    shown = lines.length;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
