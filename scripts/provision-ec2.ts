import { runCli } from '../lib/cli.ts';
import { tokenProblem } from '../lib/contract.ts';
import { intVar } from '../lib/env.ts';
import { ConfigError } from '../lib/errors.ts';
import {
  AGENT_FLAGS,
  agentSettings,
  awsCliFlags,
  checkFlag,
  flag,
  parseDelaySeconds,
  parseInstanceType,
  parseName,
  toggle,
} from './aws/args.ts';
import { startSession } from './aws/report.ts';
import { defaultTokenParameter, tokenParameterProblem } from './aws/tags.ts';

const USAGE = `Usage: npm run provision-ec2 -- --service-url URL [options]

Launches (or finds) EC2 instance(s) tagged Project=NAME and installs the random-number agent on them
through SSM Run Command: no SSH, no inbound ports. Running it again reuses everything and re-installs
the agent (an upgrade).
`;

runCli('provision-ec2', async () => {
  const flags = awsCliFlags(USAGE, {
    ...AGENT_FLAGS,
    'instance-type': flag('TYPE', 'default t3.micro; Graviton types (t4g.micro, ...) get the arm64 AMI'),
    count: flag('N', 'how many instances (default 1); a fleet still gets one command per step'),
    'api-token-parameter': flag(
      'P',
      "SSM SecureString the agent reads its API token from, under\n/random-number/; a re-run without token flags keeps the earlier run's",
    ),
    'api-token': flag(
      'TOKEN',
      'create or update that parameter (or set API_TOKEN); default name\n/random-number/NAME/api-token',
    ),
    subnet: flag('ID', "launch into this subnet (default: the instances' own, else the default VPC's)"),
    'dry-run': toggle('print the plan (what would be created or reused); change nothing'),
  });
  if (!flags) return;
  const name = parseName(flags.name);
  const token = flags['api-token'] ?? (process.env.API_TOKEN || undefined);
  // The agent's own rule, before anything is created: a token it would refuse must never reach SSM.
  const bad = token && tokenProblem(flags['api-token'] ? '--api-token' : 'API_TOKEN', token);
  if (bad) throw new ConfigError(bad);
  const given = flags['api-token-parameter'];
  const problem = given ? tokenParameterProblem(given) : undefined;
  if (problem) throw new ConfigError(`--api-token-parameter ${JSON.stringify(given)} ${problem}`);
  const options = {
    ...(await agentSettings(flags, Boolean(token || given))),
    name,
    region: flags.region,
    profile: flags.profile,
    instanceType: parseInstanceType(flags['instance-type']),
    count: checkFlag('--count', intVar(1, 50), flags.count ?? '1'),
    subnetId: flags.subnet,
    tokenParameter: given || (token ? defaultTokenParameter(name) : undefined),
    token,
    dryRun: flags['dry-run'] ?? false,
    delaySeconds: parseDelaySeconds(flags['poll-interval-ms']),
  };
  const { provision } = await import('./aws/provision.ts');
  await provision(await startSession(flags), options);
});
