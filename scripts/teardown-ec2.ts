import { runMain } from '../lib/cli.ts';
import { parseFlags, parseName } from './aws/args.ts';
import { COMMON_FLAGS, COMMON_HELP, waitsFrom } from './aws/cli-common.ts';
import { createReporter } from './aws/report.ts';

const HELP = `Usage: npm run teardown-ec2 -- [options]

Removes what provision-ec2 created for NAME: terminates the instances tagged Project=NAME (and waits),
deletes the security group, the instance profile and role, and the API token parameter only if
provision-ec2 created it. Safe to run again.

  --api-token-parameter P the token parameter to check (default: the one the agent role records,
                          else /random-number/NAME/api-token)
${COMMON_HELP}
`;

runMain('teardown-ec2', async () => {
  const flags = parseFlags(process.argv.slice(2), {
    ...COMMON_FLAGS,
    'api-token-parameter': { type: 'string' },
  } as const);
  if (flags.help) return void process.stdout.write(HELP);
  const name = parseName(flags.name);
  // The AWS SDK takes a second to load: not for --help or a flag error.
  const { createClients } = await import('./aws/clients.ts');
  const { teardown } = await import('./aws/teardown.ts');
  const report = createReporter();
  const removed = await teardown(
    createClients(flags.region),
    {
      name,
      tokenParameter: flags['api-token-parameter'] || undefined,
      waits: waitsFrom(flags['poll-interval-ms']),
    },
    report,
  );
  report.line('');
  if (!removed.length) report.line(`nothing to remove: no resources of ${name} were found`);
  else {
    report.line(`removed ${removed.length}:`);
    for (const what of removed) report.line(`  ${what}`);
  }
});
