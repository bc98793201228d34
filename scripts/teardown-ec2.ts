import { runCli } from '../lib/cli.ts';
import { awsCliFlags, flag, parseDelaySeconds, parseName, toggle } from './aws/args.ts';
import { startSession } from './aws/report.ts';

const USAGE = `Usage: npm run teardown-ec2 -- [options]

Removes what provision-ec2 created for NAME: terminates the instances tagged Project=NAME (and waits),
deletes the security group, the API token parameters provision-ec2 created (no others), then the
instance profile and role. Safe to run again; --dry-run first names what would go.
`;

runCli('teardown-ec2', async () => {
  const parameterHelp =
    'one more token parameter to check (the one the agent role records\nand /random-number/NAME/api-token always are)';
  const flags = awsCliFlags(USAGE, {
    'api-token-parameter': flag('P', parameterHelp),
    'dry-run': toggle('name what would be removed, from read calls alone; remove nothing'),
  });
  if (!flags) return;
  const options = {
    name: parseName(flags.name),
    tokenParameter: flags['api-token-parameter'],
    delaySeconds: parseDelaySeconds(flags['poll-interval-ms']),
    dryRun: flags['dry-run'] ?? false,
  };
  const { teardown } = await import('./aws/teardown.ts');
  await teardown(await startSession(flags), options);
});
