import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AGENT_SETTINGS } from '../ec2-agent/config.ts';
import { runCli } from '../lib/cli.ts';
import { ConfigError } from '../lib/errors.ts';
import { AGENT_FLAGS, agentSettings, checkFlag, cliFlags, flag, fromCaller, parseName } from './aws/args.ts';
import { describeCaCert } from './aws/ca-cert.ts';
import { buildDelivery, readAgentFiles } from './aws/delivery.ts';
import { sendCommandInput } from './aws/ssm-command.ts';

const USAGE = `Usage: npm run agent-command -- --service-url URL [options]

Writes the JSON for \`aws ssm send-command --cli-input-json file://...\`, one file per command, that
installs or upgrades the agent on the instances tagged Project=NAME (and CreatedBy=random-number-provision-ec2),
and prints the aws commands to run in order. Needs no AWS access itself; the instances must exist (npm run
provision-ec2, or your own with the AmazonSSMManagedInstanceCore role and both tags). On provision-ec2's
instances --api-token-parameter must name the parameter it recorded: their role may read no other.
`;

runCli('agent-command', async () => {
  const flags = cliFlags(USAGE, {
    ...AGENT_FLAGS,
    name: flag('NAME', 'target instances tagged Project=NAME (default random-number)'),
    'api-token-parameter': flag('P', 'SSM SecureString holding the API token (needs a region)'),
    region: flag('REGION', 'region of the parameter (default AWS_REGION or AWS_DEFAULT_REGION)'),
    out: flag('DIR', 'where the files go (default agent-commands/; NN-*.json files there are removed)'),
  });
  if (!flags) return;
  const name = parseName(flags.name);
  const settings = await agentSettings(flags);
  const variable = process.env.AWS_REGION ? 'AWS_REGION' : 'AWS_DEFAULT_REGION';
  const region = flags.region ?? (process.env[variable] || undefined);
  // It goes into the install command and the aws commands printed below: the agent's own rule, here.
  checkFlag(flags.region ? '--region' : variable, AGENT_SETTINGS.AWS_REGION.schema, region);
  const tokenParameter = flags['api-token-parameter'];
  if (tokenParameter && !region)
    throw new ConfigError(
      '--api-token-parameter needs the region the parameter lives in: pass --region or set AWS_REGION',
    );
  const files = await readAgentFiles(settings);
  const delivery = buildDelivery({ ...files, ...settings, tokenParameter, region });

  // Absolute, so that the aws commands printed below work from any folder.
  const out = flags.out ? fromCaller(flags.out) : resolve('agent-commands');
  // Node's recursive mkdir loops forever under /proc (ENOENT for a folder that cannot exist there).
  if (/^\/proc(\/|$)/.test(out)) throw new ConfigError(`--out ${out}: give a folder outside /proc`);
  await mkdir(out, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(
      `--out ${out}: cannot make that folder (${err.code}); give a folder you may write to`,
    );
  });
  // Files from an earlier bundle would be sent by a `for f in` loop; only ours go, and only ours are removed.
  for (const old of await readdir(out)) if (/^\d{2}-.*\.json$/.test(old)) await rm(join(out, old));
  const regionFlag = region ? ` --region ${region}` : '';
  const steps = [];
  for (const [index, command] of delivery.commands.entries()) {
    const what = index === delivery.commands.length - 1 ? 'install' : `part-${index + 1}`;
    const file = join(out, `${String(index + 1).padStart(2, '0')}-${what}.json`);
    await writeFile(file, `${JSON.stringify(sendCommandInput(command, { tagProject: name }), null, 2)}\n`);
    steps.push(
      `aws ssm send-command${regionFlag} --cli-input-json file://${file} --query Command.CommandId --output text\n` +
        `#   then: aws ssm list-command-invocations${regionFlag} --command-id <id> --query 'CommandInvocations[].[InstanceId,Status]' --output text`,
    );
  }
  process.stdout.write(
    `wrote ${steps.length} command files to ${out}/ (bundle sha256 ${delivery.sha256}).\n` +
      `agent CA: ${describeCaCert(settings.caCert)}\n` +
      `Run them in order; wait for each to succeed on every instance before the next:\n\n${steps.join('\n')}\n`,
  );
});
