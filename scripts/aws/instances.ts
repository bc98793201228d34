import {
  type EC2Client,
  type Instance,
  paginateDescribeInstances,
  RunInstancesCommand,
  StartInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
} from '@aws-sdk/client-ec2';
import { AwsStateError, errorName } from './errors.ts';
import { projectFilters, projectTags } from './tags.ts';
import { type WaitForTiming, waitFor } from './wait.ts';

/** States in which an instance still counts as "ours and alive" for idempotent re-runs. */
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'];

export interface FoundInstance {
  instanceId: string;
  state: string;
}

export async function findInstances(ec2: EC2Client, name: string): Promise<FoundInstance[]> {
  const found: FoundInstance[] = [];
  const pages = paginateDescribeInstances(
    { client: ec2 },
    { Filters: [...projectFilters(name), { Name: 'instance-state-name', Values: LIVE_STATES }] },
  );
  for await (const page of pages) {
    for (const reservation of page.Reservations ?? []) {
      for (const instance of reservation.Instances ?? []) {
        found.push({ instanceId: instance.InstanceId as string, state: instance.State?.Name ?? 'unknown' });
      }
    }
  }
  return found;
}

export interface LaunchOptions {
  name: string;
  count: number;
  imageId: string;
  rootDeviceName: string;
  instanceType: string;
  instanceProfileName: string;
  securityGroupId: string;
  subnetId?: string;
  /** Bounds the retries while a new instance profile propagates. */
  profileRetry: WaitForTiming;
}

/** RunInstances' answer while a just-created instance profile has not propagated to EC2 yet. */
export function isProfileNotReady(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return errorName(err) === 'InvalidParameterValue' && /iam ?instance ?profile/i.test(message);
}

/**
 * Launches `count` instances: IMDSv2 only, an encrypted gp3 root volume, the instance profile, and the
 * project tags on instance and volume. Retries only the profile-propagation error, bounded.
 */
export async function launchInstances(ec2: EC2Client, options: LaunchOptions): Promise<Instance[]> {
  const tags = projectTags(options.name);
  const command = new RunInstancesCommand({
    ImageId: options.imageId,
    InstanceType: options.instanceType as never,
    MinCount: options.count,
    MaxCount: options.count,
    IamInstanceProfile: { Name: options.instanceProfileName },
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
    BlockDeviceMappings: [
      {
        DeviceName: options.rootDeviceName,
        Ebs: {
          VolumeType: 'gp3',
          VolumeSize: 8,
          Encrypted: true,
          DeleteOnTermination: true,
        },
      },
    ],
    SecurityGroupIds: [options.securityGroupId],
    ...(options.subnetId ? { SubnetId: options.subnetId } : {}),
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
  });
  return waitFor({
    ...options.profileRetry,
    what: `instance profile ${options.instanceProfileName} to become usable by EC2`,
    hint: 'IAM changes usually propagate within a minute; run again if it persists',
    check: async () => {
      try {
        const { Instances } = await ec2.send(command);
        if (!Instances?.length) throw new AwsStateError('RunInstances returned no instances');
        return Instances;
      } catch (err) {
        if (isProfileNotReady(err)) return undefined;
        throw err;
      }
    },
  });
}

type InstanceWaiter = typeof waitUntilInstanceRunning;
export interface WaitTiming {
  maxWaitSeconds: number;
  minDelaySeconds: number;
}

/** Runs an SDK instance waiter with a named maximum; on timeout `describe` says what did not happen. */
async function waitForInstances(
  waiter: InstanceWaiter,
  ec2: EC2Client,
  instanceIds: string[],
  timing: WaitTiming,
  describe: (err: Error) => string,
): Promise<void> {
  await waiter(
    {
      client: ec2,
      maxWaitTime: timing.maxWaitSeconds,
      minDelay: timing.minDelaySeconds,
      maxDelay: Math.max(timing.minDelaySeconds, 15),
    },
    { InstanceIds: instanceIds },
  ).catch((err: unknown) => {
    throw new AwsStateError(describe(err as Error), { cause: err });
  });
}

/**
 * Re-runs reuse the project's stopped instances rather than launching more: a stopped one is started;
 * one still stopping cannot be started yet (IncorrectInstanceState), so it is first awaited until
 * stopped, bounded. Returns the ids it started.
 */
export async function startStopped(
  ec2: EC2Client,
  instances: FoundInstance[],
  timing: WaitTiming,
): Promise<string[]> {
  const stopping = instances.filter((i) => i.state === 'stopping').map((i) => i.instanceId);
  const stopped = instances.filter((i) => i.state === 'stopped').map((i) => i.instanceId);
  if (stopping.length) {
    await waitForInstances(
      waitUntilInstanceStopped,
      ec2,
      stopping,
      timing,
      (err) =>
        `instances ${stopping.join(', ')} still stopping after ${timing.maxWaitSeconds} s, so they cannot be started: run again later, or terminate them (npm run teardown-ec2): ${err.message}`,
    );
  }
  const toStart = [...stopped, ...stopping];
  if (toStart.length) await ec2.send(new StartInstancesCommand({ InstanceIds: toStart }));
  return toStart;
}

/** The SDK waiter with a named maximum; its error names the instances. */
export async function waitRunning(ec2: EC2Client, instanceIds: string[], timing: WaitTiming): Promise<void> {
  await waitForInstances(
    waitUntilInstanceRunning,
    ec2,
    instanceIds,
    timing,
    (err) =>
      `instances ${instanceIds.join(', ')} not running after ${timing.maxWaitSeconds} s: ${err.message}`,
  );
}

export async function terminateInstances(
  ec2: EC2Client,
  instanceIds: string[],
  timing: WaitTiming,
): Promise<void> {
  if (!instanceIds.length) return;
  await ec2.send(new TerminateInstancesCommand({ InstanceIds: instanceIds }));
  await waitForInstances(
    waitUntilInstanceTerminated,
    ec2,
    instanceIds,
    timing,
    (err) =>
      `instances ${instanceIds.join(', ')} not terminated after ${timing.maxWaitSeconds} s: ${err.message}`,
  );
}
