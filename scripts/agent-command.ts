import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runMain } from '../lib/cli.ts';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { ConfigError } from '../lib/errors.ts';
import { installArgs, readAgentFiles } from './aws/agent-files.ts';
import { parseFlags, parseName, parseOutputFile, parseSchedule, parseServiceUrl } from './aws/args.ts';
import { describeCaCert, readCaCert } from './aws/ca-cert.ts';
import { buildDelivery } from './aws/delivery.ts';
import { SSM_LIMIT_BYTES, sendCommandInput } from './aws/ssm-command.ts';

const HELP = `Usage: npm run agent-command -- --service-url URL [options]

Writes the JSON for \`aws ssm send-command --cli-input-json file://...\`, one file per command, that
installs or upgrades the agent on the instances tagged Project=NAME (and CreatedBy=random-number-provision-ec2),
and prints the aws commands to run in order. Needs no AWS access itself; the instances must exist (npm run
provision-ec2, or your own with the AmazonSSMManagedInstanceCore role and both tags).

  --service-url URL       the random-number service the agent polls (required)
  --name NAME             target instances tagged Project=NAME (default random-number)
  --schedule CRON         default '${AGENT_DEFAULTS.schedule}' (every minute)
  --output-file PATH      where the agent appends the numbers (default ${AGENT_DEFAULTS.outputFile})
  --api-token-parameter P SSM SecureString holding the API token (needs --region or AWS_REGION)
  --ca-cert FILE          a PEM CA the agent trusts besides the public CAs (e.g. certs/ca.crt);
                          without it an installed one is kept; --ca-cert none removes it
  --region REGION         region the agent reads the parameter in (default AWS_REGION)
  --out DIR               where the files go (default agent-commands/, emptied first)
  --bundle FILE           default dist/ec2-agent.mjs
  --install-script FILE   default ec2-agent/install.sh
  -h, --help              this text
`;

runMain('agent-command', async () => {
  const flags = parseFlags(process.argv.slice(2), {
    'service-url': { type: 'string' },
    name: { type: 'string' },
    schedule: { type: 'string' },
    'output-file': { type: 'string' },
    'api-token-parameter': { type: 'string' },
    'ca-cert': { type: 'string' },
    region: { type: 'string' },
    out: { type: 'string' },
    bundle: { type: 'string' },
    'install-script': { type: 'string' },
  } as const);
  if (flags.help) return void process.stdout.write(HELP);
  const name = parseName(flags.name);
  const serviceUrl = parseServiceUrl(flags['service-url']);
  const schedule = parseSchedule(flags.schedule);
  const outputFile = parseOutputFile(flags['output-file']);
  const region = flags.region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined;
  const tokenParameter = flags['api-token-parameter'];
  if (tokenParameter && !region) {
    throw new ConfigError(
      '--api-token-parameter needs the region the parameter lives in: pass --region or set AWS_REGION',
    );
  }
  const caCert = await readCaCert(flags['ca-cert']);
  const files = await readAgentFiles({ bundle: flags.bundle, installScript: flags['install-script'] });
  const delivery = buildDelivery({
    ...files,
    installArgs: installArgs({ serviceUrl, schedule, outputFile, tokenParameter, region }),
    caCert: caCert === 'none' ? 'none' : caCert?.pem,
  });

  const out = flags.out ?? 'agent-commands';
  await mkdir(out, { recursive: true });
  // Files from an earlier bundle would be sent by a `for f in` loop; only ours go, and only ours are removed.
  for (const old of await readdir(out)) if (/^\d{2}-.*\.json$/.test(old)) await rm(join(out, old));
  const written: string[] = [];
  for (const [index, command] of delivery.commands.entries()) {
    const last = index === delivery.commands.length - 1;
    const file = join(
      out,
      `${String(index + 1).padStart(2, '0')}-${last ? 'install' : `part-${index + 1}`}.json`,
    );
    const json = `${JSON.stringify(sendCommandInput(command, { tagProject: name }), null, 2)}\n`;
    if (Buffer.byteLength(json) >= SSM_LIMIT_BYTES) throw new ConfigError(`${file} would exceed 64 KB`);
    await writeFile(file, json);
    written.push(file);
  }
  const regionFlag = region ? ` --region ${region}` : '';
  process.stdout.write(
    `wrote ${written.length} command files to ${out}/ (bundle sha256 ${delivery.sha256}).\n` +
      `agent CA: ${describeCaCert(caCert)}\n` +
      `Run them in order; wait for each to succeed on every instance before the next:\n\n` +
      written
        .map(
          (file) =>
            `aws ssm send-command${regionFlag} --cli-input-json file://${file} --query Command.CommandId --output text\n` +
            `#   then: aws ssm list-command-invocations${regionFlag} --command-id <id> --query 'CommandInvocations[].[InstanceId,Status]' --output text`,
        )
        .join('\n') +
      '\n',
  );
});
