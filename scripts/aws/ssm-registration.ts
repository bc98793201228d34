import { DescribeInstanceInformationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { errorName } from './errors.ts';
import { type WaitForTiming, waitFor } from './wait.ts';

/**
 * The endpoint does not offer the operation: HTTP 501, an error named so, or an HTTP 500 that is not an
 * AWS error at all (no `$fault`: a real service's own 500 is modelled and carries `$fault: 'server'`).
 * Real SSM offers DescribeInstanceInformation; an emulator without it answers the 500 with a web page.
 */
export function isUnsupportedOperation(err: unknown): boolean {
  const { $metadata, $fault } = (err ?? {}) as { $metadata?: { httpStatusCode?: number }; $fault?: string };
  const status = $metadata?.httpStatusCode;
  if (status === 501) return true;
  if (
    ['NotImplemented', 'NotImplementedException', 'UnknownOperationException', 'InvalidAction'].includes(
      errorName(err),
    )
  ) {
    return true;
  }
  return status === 500 && $fault === undefined;
}

type Registered = 'registered' | 'not-yet' | 'unavailable';

/** All instances Online per DescribeInstanceInformation; 'unavailable' when the API is not there. */
export async function describeRegistration(ssm: SSMClient, instanceIds: string[]): Promise<Registered> {
  try {
    const { InstanceInformationList } = await ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: instanceIds }] }),
    );
    const online = new Set(
      (InstanceInformationList ?? []).filter((i) => i.PingStatus === 'Online').map((i) => i.InstanceId),
    );
    return instanceIds.every((id) => online.has(id)) ? 'registered' : 'not-yet';
  } catch (err) {
    if (isUnsupportedOperation(err)) return 'unavailable';
    throw err;
  }
}

/**
 * Fallback probe: SendCommand to the instance ids answers InvalidInstanceId until the SSM agent on each
 * has registered. A harmless `true` is what it runs once it is accepted.
 */
export async function probeRegistration(
  ssm: SSMClient,
  instanceIds: string[],
): Promise<'registered' | 'not-yet'> {
  try {
    await ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: instanceIds,
        Comment: 'registration probe',
        Parameters: { commands: ['true'] },
      }),
    );
    return 'registered';
  } catch (err) {
    if (errorName(err) === 'InvalidInstanceId') return 'not-yet';
    throw err;
  }
}

/**
 * Waits until every instance is a managed instance that Run Command can reach. Uses
 * DescribeInstanceInformation where the endpoint offers it and the SendCommand probe where it does not.
 * Returns which method decided.
 */
export async function waitForRegistration(
  ssm: SSMClient,
  options: { instanceIds: string[]; timing: WaitForTiming },
): Promise<'DescribeInstanceInformation' | 'SendCommand probe'> {
  let describeAvailable = true;
  return waitFor({
    ...options.timing,
    what: `SSM registration of ${options.instanceIds.join(', ')}`,
    hint: 'the instance needs outbound HTTPS to the SSM endpoints (a public IP or a NAT in its subnet) and the AmazonSSMManagedInstanceCore role; see Fleet Manager in the SSM console',
    check: async () => {
      if (describeAvailable) {
        const state = await describeRegistration(ssm, options.instanceIds);
        if (state === 'registered') return 'DescribeInstanceInformation' as const;
        if (state === 'not-yet') return undefined;
        describeAvailable = false;
      }
      return (await probeRegistration(ssm, options.instanceIds)) === 'registered'
        ? ('SendCommand probe' as const)
        : undefined;
    },
  });
}
