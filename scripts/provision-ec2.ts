import { runMain } from '../lib/cli.ts';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { ConfigError } from '../lib/errors.ts';
import {
  parseFlags,
  parseInstanceType,
  parseIntFlag,
  parseName,
  parseOutputFile,
  parseSchedule,
  parseServiceUrl,
} from './aws/args.ts';
import { readCaCert } from './aws/ca-cert.ts';
import { COMMON_FLAGS, COMMON_HELP, waitsFrom } from './aws/cli-common.ts';
import { createReporter } from './aws/report.ts';
import { defaultTokenParameter, tokenParameterProblem } from './aws/tags.ts';

const HELP = `Usage: npm run provision-ec2 -- --service-url URL [options]

Launches (or finds) EC2 instance(s) tagged Project=NAME and installs the random-number agent on them
through SSM Run Command: no SSH, no inbound ports. Running it again reuses everything and re-installs
the agent (an upgrade).

  --service-url URL       the random-number service the agent polls (required)
  --instance-type TYPE    default t3.micro; Graviton types (t4g.micro, ...) get the arm64 AMI
  --count N               how many instances (default 1); a fleet still gets one command per step
  --schedule CRON         the agent's cron schedule (default '${AGENT_DEFAULTS.schedule}': every minute)
  --output-file PATH      where the agent appends the numbers (default ${AGENT_DEFAULTS.outputFile})
  --api-token-parameter P SSM SecureString the agent reads its API token from, under
                          /random-number/; a re-run without token flags keeps the earlier run's
  --api-token TOKEN       create or update that parameter (or set API_TOKEN); default name
                          /random-number/NAME/api-token
  --ca-cert FILE          a PEM CA the agent trusts besides the public CAs (a service behind a
                          private certificate, e.g. certs/ca.crt from make tls-cert); a re-run
                          without it keeps the installed one; --ca-cert none removes it
  --subnet ID             launch into this subnet (default: the default VPC's default subnet)
  --dry-run               print the plan (what would be created or reused); change nothing
  --bundle FILE           agent bundle (default dist/ec2-agent.mjs, from \`npm run build\`)
  --install-script FILE   default ec2-agent/install.sh
${COMMON_HELP}
`;

runMain('provision-ec2', async () => {
  const flags = parseFlags(process.argv.slice(2), {
    ...COMMON_FLAGS,
    'service-url': { type: 'string' },
    'instance-type': { type: 'string' },
    count: { type: 'string' },
    schedule: { type: 'string' },
    'output-file': { type: 'string' },
    'api-token-parameter': { type: 'string' },
    'api-token': { type: 'string' },
    'ca-cert': { type: 'string' },
    subnet: { type: 'string' },
    'dry-run': { type: 'boolean' },
    bundle: { type: 'string' },
    'install-script': { type: 'string' },
  } as const);
  if (flags.help) return void process.stdout.write(HELP);
  const name = parseName(flags.name);
  const token = flags['api-token'] || process.env.API_TOKEN || undefined;
  const given = flags['api-token-parameter'];
  const problem = given ? tokenParameterProblem(given) : undefined;
  if (problem) throw new ConfigError(`--api-token-parameter ${JSON.stringify(given)} ${problem}`);
  const options = {
    name,
    serviceUrl: parseServiceUrl(flags['service-url']),
    instanceType: parseInstanceType(flags['instance-type']),
    count: parseIntFlag('--count', flags.count, 1, 1, 50),
    schedule: parseSchedule(flags.schedule),
    outputFile: parseOutputFile(flags['output-file']),
    subnetId: flags.subnet,
    tokenParameter: given || (token ? defaultTokenParameter(name) : undefined),
    token,
    caCert: await readCaCert(flags['ca-cert']),
    dryRun: flags['dry-run'] ?? false,
    bundlePath: flags.bundle,
    installScriptPath: flags['install-script'],
    waits: waitsFrom(flags['poll-interval-ms']),
  };
  // The AWS SDK takes a second to load: not for --help or a flag error.
  const { createClients } = await import('./aws/clients.ts');
  const { provision } = await import('./aws/provision.ts');
  const report = createReporter();
  const result = await provision(createClients(flags.region), options, report);
  if (result.dryRun) return;
  const extra = [
    name === 'random-number' ? '' : ` --name ${name}`,
    flags.region ? ` --region ${result.region}` : '',
  ].join('');
  const args = extra ? ` --${extra}` : '';
  report.line('');
  report.line(`done: the agent is installed on ${result.instanceIds.join(', ')} in ${result.region}`);
  report.line(
    `  created: ${result.created.length ? result.created.join(', ') : 'nothing (everything existed)'}`,
  );
  report.line(`  reused:  ${result.reused.length ? result.reused.join(', ') : 'nothing'}`);
  report.line(`  results:  npm run ec2-results${args}   (numbers appear after the first schedule tick)`);
  report.line(`  teardown: npm run teardown-ec2${args}`);
});
