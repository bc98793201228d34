import { runMain } from '../lib/cli.ts';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { parseFlags, parseIntFlag, parseName } from './aws/args.ts';
import { COMMON_FLAGS, COMMON_HELP, waitsFrom } from './aws/cli-common.ts';
import { createReporter } from './aws/report.ts';
import { formatResults } from './aws/results.ts';

const HELP = `Usage: npm run ec2-results -- [options]

Reads the agent's output file on each running instance tagged Project=NAME through SSM Run Command
(no SSH) and prints the last lines, a summary (count, min, max, mean, a histogram of 0–100) and the
failures and cold starts the agent logged in the last hour.

  --lines N               how many of the last lines to read (default 60, at most 500:
                          SSM returns at most 24,000 characters of output)
  --output-file PATH      the agent's output file (default ${AGENT_DEFAULTS.outputFile})
${COMMON_HELP}
`;

runMain('ec2-results', async () => {
  const flags = parseFlags(process.argv.slice(2), {
    ...COMMON_FLAGS,
    lines: { type: 'string' },
    'output-file': { type: 'string' },
  } as const);
  if (flags.help) return void process.stdout.write(HELP);
  // The AWS SDK takes a second to load: not for --help or a flag error.
  const { createClients } = await import('./aws/clients.ts');
  const { readResults } = await import('./aws/read-results.ts');
  const report = createReporter();
  const outputFile = flags['output-file'] ?? AGENT_DEFAULTS.outputFile;
  const results = await readResults(
    createClients(flags.region),
    {
      name: parseName(flags.name),
      lines: parseIntFlag('--lines', flags.lines, 60, 1, 500),
      outputFile,
      waits: waitsFrom(flags['poll-interval-ms']),
    },
    report,
  );
  for (const { instanceId, parsed } of results) {
    report.line('');
    report.line(formatResults(instanceId, parsed));
  }
});
