import { runCli } from '../lib/cli.ts';
import { awsCliFlags, flag, parseDelaySeconds, parseName, toggle } from './aws/args.ts';
import { startSession } from './aws/report.ts';

const USAGE = `Usage: npm run teardown-ec2 -- [options]

Removes what provision-ec2 created for NAME: terminates the instances tagged Project=NAME (and waits),
deletes the security group, the instance profile and role, and the API token parameter only if
provision-ec2 created it. Safe to run again; --dry-run first names what would go.
`;

runCli('teardown-ec2', async () => {
  const parameterHelp =
    'the token parameter to check (default: the one the agent role records,\nelse /random-number/NAME/api-token)';
  const flags = awsCliFlags(USAGE, {
    'api-token-parameter': flag('P', parameterHelp),
    'dry-run': toggle('name what would be removed, from read calls alone; remove nothing'),
  });
  if (!flags) return;
  const options = {
    name: parseName(flags.name),
    tokenParameter: flags['api-token-parameter'] || undefined,
    delaySeconds: parseDelaySeconds(flags['poll-interval-ms']),
    dryRun: flags['dry-run'] ?? false,
  };
  const { teardown } = await import('./aws/teardown.ts');
  await teardown(await startSession(flags), options);
});
