import {
  GetCommandInvocationCommand,
  paginateDescribeInstanceInformation,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { CommandFailedError, errorName, PayloadTooLargeError, WaitTimeoutError } from './errors.ts';
import { projectFilters } from './tags.ts';
import { type WaitForTiming, waitFor } from './wait.ts';

/**
 * SSM caps a command's document plus its runtime parameters at 64 KB. AWS-RunShellScript's own
 * document is about 1.5 KB, so the parameters get what is left minus a margin.
 */
export const MAX_PARAMETERS_BYTES = 60_000;

/** Where a command goes: the fleet by tag (one command for N instances) or explicit instance ids. */
type CommandTarget = { tagProject: string } | { instanceIds: string[] };

export interface ShellCommand {
  /** Short label for output and the command's Comment. */
  comment: string;
  /** The lines of the shell script (AWS-RunShellScript's `commands` parameter). */
  commands: string[];
  /**
   * How long the command may wait to start (SSM's TimeoutSeconds: SSM starts no command after it) and
   * then how long it may run (AWS-RunShellScript's executionTimeout): the provisioner waits for both.
   */
  timeoutSeconds: number;
}

/** Byte size of what the `commands` parameter adds to the request. */
export function payloadBytes(commands: string[]): number {
  return Buffer.byteLength(JSON.stringify({ commands }), 'utf8');
}

export function assertPayloadFits(command: ShellCommand): void {
  const bytes = payloadBytes(command.commands);
  if (bytes > MAX_PARAMETERS_BYTES) {
    throw new PayloadTooLargeError(
      `command "${command.comment}" carries ${bytes} bytes of parameters, over the ${MAX_PARAMETERS_BYTES}-byte budget under SSM's 64 KB limit`,
    );
  }
}

/** The SendCommand input, shared by the provisioner and the JSON files for `aws ssm send-command`. */
export function sendCommandInput(command: ShellCommand, target: CommandTarget) {
  assertPayloadFits(command);
  const where =
    'tagProject' in target
      ? {
          // The project's EC2 tag filters as SSM targets: both tags (ANDed). The operator policy allows
          // commands only to instances carrying ours, so one with just a same-named Project tag is left out.
          Targets: projectFilters(target.tagProject).map(({ Name, Values }) => ({ Key: Name, Values })),
          // The whole fleet at once; a single failure stops the rest (an install should not half-apply).
          MaxConcurrency: '100%',
          MaxErrors: '0',
        }
      : { InstanceIds: target.instanceIds };
  return {
    DocumentName: 'AWS-RunShellScript',
    Comment: command.comment.slice(0, 100),
    TimeoutSeconds: command.timeoutSeconds,
    Parameters: { commands: command.commands, executionTimeout: [String(command.timeoutSeconds)] },
    ...where,
  };
}

/** Invocation states SSM has not finished with yet. */
const RUNNING = new Set(['Pending', 'InProgress', 'Delayed', 'Cancelling']);

/**
 * Sends one command to the target and waits for it to end on each of `instanceIds`: a failed command
 * is a CommandFailedError with the remote stderr; one still missing when SSM would no longer start it
 * means the target did not include the instance. Not the SDK's waitUntilCommandExecuted: its acceptors
 * retry every error (AccessDenied, expired credentials) until the wait is over; here only
 * InvocationDoesNotExist (right after SendCommand) and throttling are "not yet".
 */
export async function runCommand(
  ssm: SSMClient,
  options: { command: ShellCommand; target: CommandTarget; instanceIds: string[]; delaySeconds: number },
): Promise<{ commandId: string; results: { instanceId: string; stdout: string }[] }> {
  const { command, delaySeconds } = options;
  const seconds = command.timeoutSeconds;
  const what = `command "${command.comment}"`;
  const { Command } = await ssm.send(new SendCommandCommand(sendCommandInput(command, options.target)));
  const commandId = Command?.CommandId;
  if (!commandId) throw new CommandFailedError(`SendCommand for "${command.comment}" returned no command id`);
  const sentAt = Date.now();
  const results = [];
  for (const instanceId of options.instanceIds) {
    const out = await waitFor({
      delaySeconds,
      maxWaitSeconds: 2 * seconds,
      what: `${what} (${commandId}) on ${instanceId}`,
      hint: `see: aws ssm get-command-invocation --command-id ${commandId} --instance-id ${instanceId}`,
      check: () =>
        ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId })).then(
          (invocation) => (RUNNING.has(invocation.Status ?? '') ? undefined : invocation),
          (err: unknown) => {
            if (errorName(err) !== 'InvocationDoesNotExist') throw err;
            if (Date.now() - sentAt < seconds * 1000) return undefined;
            throw new WaitTimeoutError(
              `${what} (${commandId}) never reached ${instanceId} within ${seconds} s: is the instance registered with SSM and tagged as the command's target?`,
              { cause: err },
            );
          },
        ),
    });
    const { Status = 'unknown', StandardOutputContent: stdout = '', StandardErrorContent: stderr = '' } = out;
    if (Status !== 'Success') {
      throw new CommandFailedError(
        `${what} ${Status} on ${instanceId} (exit ${out.ResponseCode ?? -1}): ${stderr.trim() || stdout.trim() || '(no output)'}`,
      );
    }
    results.push({ instanceId, stdout });
  }
  return { commandId, results };
}

/**
 * The endpoint does not offer the operation: HTTP 501, an error named so, or an HTTP 500 that is not an
 * AWS error at all (no `$fault`: a real service's own 500 is modelled and carries `$fault: 'server'`).
 * Real SSM offers DescribeInstanceInformation; an emulator without it answers the 500 with a web page.
 */
function isUnsupportedOperation(err: unknown): boolean {
  const { $metadata, $fault } = err as { $metadata?: { httpStatusCode?: number }; $fault?: string };
  const status = $metadata?.httpStatusCode;
  const named = /^(NotImplemented|UnknownOperation|InvalidAction)/.test(errorName(err));
  return named || status === 501 || (status === 500 && $fault === undefined);
}

/**
 * Waits until every instance is a managed instance Run Command can reach: all Online per
 * DescribeInstanceInformation where the endpoint offers it; where it does not, a harmless `true` sent to
 * the instance ids, which SSM refuses with InvalidInstanceId until the agent on each has registered.
 * Returns which of the two decided.
 */
export async function waitForRegistration(ssm: SSMClient, instanceIds: string[], timing: WaitForTiming) {
  let describe = true;
  return waitFor({
    ...timing,
    what: `SSM registration of ${instanceIds.join(', ')}`,
    hint: 'the instance needs outbound HTTPS to the SSM endpoints (a public IP or a NAT in its subnet) and the AmazonSSMManagedInstanceCore role; see Fleet Manager in the SSM console',
    check: async () => {
      if (describe) {
        try {
          // Every page: SSM may answer a filtered list in several, some of them empty.
          const Filters = [{ Key: 'InstanceIds', Values: instanceIds }];
          const online = new Set<string | undefined>();
          for await (const page of paginateDescribeInstanceInformation({ client: ssm }, { Filters })) {
            for (const i of page.InstanceInformationList ?? [])
              if (i.PingStatus === 'Online') online.add(i.InstanceId);
          }
          return instanceIds.every((id) => online.has(id)) ? 'DescribeInstanceInformation' : undefined;
        } catch (err) {
          if (!isUnsupportedOperation(err)) throw err;
          describe = false;
        }
      }
      const probe = { comment: 'registration probe', commands: ['true'], timeoutSeconds: 60 };
      return ssm.send(new SendCommandCommand(sendCommandInput(probe, { instanceIds }))).then(
        () => 'SendCommand probe',
        (err: unknown) => {
          if (errorName(err) !== 'InvalidInstanceId') throw err;
          return undefined; // not registered yet
        },
      );
    },
  });
}
