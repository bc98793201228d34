import { ConfigError } from '../../lib/errors.ts';
import type { Clients } from './clients.ts';
import { checkCredentials } from './credentials.ts';
import { AwsStateError, errorName } from './errors.ts';
import { findInstances } from './instances.ts';
import type { Reporter } from './report.ts';
import { type ParsedResults, parseResults, resultsScript } from './results.ts';
import { runCommand } from './ssm-command.ts';
import { timing, type Waits } from './waits.ts';

export interface ReadResultsOptions {
  name: string;
  lines: number;
  outputFile: string;
  waits: Waits;
}

/** Reads the agent's output file and recent journal lines from every running instance, through SSM. */
export async function readResults(
  clients: Clients,
  options: ReadResultsOptions,
  report: Reporter,
): Promise<{ instanceId: string; parsed: ParsedResults }[]> {
  await report.step(
    'credentials',
    () => checkCredentials(clients.sts),
    (id) => `${id.arn} in ${id.region}`,
  );
  const instanceIds = (await findInstances(clients.ec2, options.name))
    .filter((i) => i.state === 'running')
    .map((i) => i.instanceId);
  if (!instanceIds.length) {
    throw new ConfigError(
      `no running instance tagged Project=${options.name}: run \`npm run provision-ec2 -- --service-url <url>\` first`,
    );
  }
  const { results } = await report.step(
    'read results',
    () =>
      runCommand(clients.ssm, {
        command: {
          comment: 'random-number agent: read results',
          commands: resultsScript(options),
          timeoutSeconds: 60,
        },
        target: { instanceIds },
        instanceIds,
        timing: timing(options.waits, 120_000),
      }).catch((err: unknown) => {
        if (errorName(err) !== 'InvalidInstanceId') throw err;
        throw new AwsStateError(
          `${instanceIds.join(', ')} not reachable through SSM yet (InvalidInstanceId): a new instance registers within a few minutes; if it persists, check its outbound HTTPS and its role`,
          { cause: err },
        );
      }),
    (r) => `command ${r.commandId} on ${instanceIds.join(', ')}`,
  );
  return results.map((r) => ({ instanceId: r.instanceId, parsed: parseResults(r.stdout) }));
}
