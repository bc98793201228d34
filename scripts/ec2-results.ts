import { AGENT_SETTINGS } from '../ec2-agent/config.ts';
import { runCli } from '../lib/cli.ts';
import { AGENT_DEFAULTS } from '../lib/contract.ts';
import { intVar } from '../lib/env.ts';
import { awsCliFlags, checkFlag, flag, parseDelaySeconds, parseName } from './aws/args.ts';
import { startSession } from './aws/report.ts';

const USAGE = `Usage: npm run ec2-results -- [options]

Reads the agent's output file on each running instance tagged Project=NAME through SSM Run Command
(no SSH) and prints the last lines, a summary (count, min, max, mean, a histogram of 0–100) and the
failures and cold starts the agent logged in the last hour.
`;

runCli('ec2-results', async () => {
  const lines = flag(
    'N',
    'how many of the last lines to read (default 60, at most 500:\nSSM returns at most 24,000 characters of output)',
  );
  const outputFile = flag('PATH', `the agent's output file (default ${AGENT_DEFAULTS.outputFile})`);
  const flags = awsCliFlags(USAGE, { lines, 'output-file': outputFile });
  if (!flags) return;
  const options = {
    name: parseName(flags.name),
    lines: checkFlag('--lines', intVar(1, 500), flags.lines ?? '60'),
    // The agent's own rule: a path it would refuse cannot be its file, and reading it would only say "missing".
    outputFile: checkFlag('--output-file', AGENT_SETTINGS.OUTPUT_FILE.schema, flags['output-file']),
    delaySeconds: parseDelaySeconds(flags['poll-interval-ms']),
  };
  const { printResults } = await import('./aws/results.ts');
  await printResults(await startSession(flags), options);
});
