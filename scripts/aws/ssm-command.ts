import {
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { CommandFailedError, errorName, PayloadTooLargeError, WaitTimeoutError } from './errors.ts';
import { CREATED_BY_TAG } from './tags.ts';
import { type WaitForTiming, waitFor } from './wait.ts';

/**
 * SSM caps a command's document plus its runtime parameters at 64 KB. AWS-RunShellScript's own
 * document is about 1.5 KB, so the parameters get what is left minus a margin.
 */
export const SSM_LIMIT_BYTES = 64 * 1024;
export const MAX_PARAMETERS_BYTES = 60_000;

export const DOCUMENT = 'AWS-RunShellScript';

/** Where a command goes: the fleet by tag (one command for N instances) or explicit instance ids. */
export type CommandTarget = { tagProject: string } | { instanceIds: string[] };

export interface ShellCommand {
  /** Short label for output and the command's Comment. */
  comment: string;
  /** The lines of the shell script (AWS-RunShellScript's `commands` parameter). */
  commands: string[];
  timeoutSeconds?: number;
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
          // Both tags (targets are ANDed): the operator policy allows commands only to instances
          // carrying ours, so an instance with just a same-named Project tag is not included.
          Targets: [
            { Key: 'tag:Project', Values: [target.tagProject] },
            { Key: `tag:${CREATED_BY_TAG.Key}`, Values: [CREATED_BY_TAG.Value] },
          ],
          // The whole fleet at once; a single failure stops the rest (an install should not half-apply).
          MaxConcurrency: '100%',
          MaxErrors: '0',
        }
      : { InstanceIds: target.instanceIds };
  return {
    DocumentName: DOCUMENT,
    Comment: command.comment.slice(0, 100),
    TimeoutSeconds: command.timeoutSeconds ?? 600,
    Parameters: { commands: command.commands },
    ...where,
  };
}

export async function sendCommand(
  ssm: SSMClient,
  command: ShellCommand,
  target: CommandTarget,
): Promise<string> {
  const { Command } = await ssm.send(new SendCommandCommand(sendCommandInput(command, target)));
  if (!Command?.CommandId)
    throw new CommandFailedError(`SendCommand for "${command.comment}" returned no command id`);
  return Command.CommandId;
}

/** Right after SendCommand an invocation can be unknown for a few seconds; minutes mean it will not come. */
export const DEFAULT_APPEAR_MAX_MS = 180_000;

const TERMINAL = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut', 'Cancelling']);

export interface InvocationResult {
  instanceId: string;
  status: string;
  stdout: string;
  stderr: string;
  responseCode: number;
}

/**
 * Waits until the command has finished on one instance. Right after SendCommand the invocation may not
 * exist yet (InvocationDoesNotExist): that is "not yet", not an error. A non-Success end throws
 * CommandFailedError carrying the remote stderr.
 */
export async function waitForInvocation(
  ssm: SSMClient,
  options: {
    commandId: string;
    instanceId: string;
    comment: string;
    timing: WaitForTiming;
    /** How long the invocation may stay unknown before we conclude the command never reached the instance. */
    appearMaxMs?: number;
    now?: () => number;
  },
): Promise<InvocationResult> {
  const now = options.now ?? Date.now;
  const start = now();
  const appearMaxMs = options.appearMaxMs ?? DEFAULT_APPEAR_MAX_MS;
  const out: GetCommandInvocationCommandOutput = await waitFor({
    ...options.timing,
    what: `command "${options.comment}" (${options.commandId}) on ${options.instanceId}`,
    hint: `see: aws ssm get-command-invocation --command-id ${options.commandId} --instance-id ${options.instanceId}`,
    check: async () => {
      try {
        const invocation = await ssm.send(
          new GetCommandInvocationCommand({ CommandId: options.commandId, InstanceId: options.instanceId }),
        );
        return TERMINAL.has(invocation.Status ?? '') ? invocation : undefined;
      } catch (err) {
        if (errorName(err) !== 'InvocationDoesNotExist') throw err;
        // Briefly normal (eventual consistency); for minutes it means the target did not include the instance.
        if (now() - start < appearMaxMs) return undefined;
        throw new WaitTimeoutError(
          `command "${options.comment}" (${options.commandId}) never reached ${options.instanceId} within ${Math.round(appearMaxMs / 1000)} s: is the instance registered with SSM and tagged as the command's target?`,
          { cause: err },
        );
      }
    },
  });
  const result = {
    instanceId: options.instanceId,
    status: out.Status ?? 'unknown',
    stdout: out.StandardOutputContent ?? '',
    stderr: out.StandardErrorContent ?? '',
    responseCode: out.ResponseCode ?? -1,
  };
  if (result.status !== 'Success') {
    const stderr = result.stderr.trim() || result.stdout.trim() || '(no output)';
    throw new CommandFailedError(
      `command "${options.comment}" ${result.status} on ${options.instanceId} (exit ${result.responseCode}): ${stderr}`,
    );
  }
  return result;
}

/** Sends one command to the target and waits for it on each of `instanceIds`. */
export async function runCommand(
  ssm: SSMClient,
  options: {
    command: ShellCommand;
    target: CommandTarget;
    instanceIds: string[];
    timing: WaitForTiming;
  },
): Promise<{ commandId: string; results: InvocationResult[] }> {
  const commandId = await sendCommand(ssm, options.command, options.target);
  const results: InvocationResult[] = [];
  for (const instanceId of options.instanceIds) {
    results.push(
      await waitForInvocation(ssm, {
        commandId,
        instanceId,
        comment: options.command.comment,
        timing: options.timing,
      }),
    );
  }
  return { commandId, results };
}
