import {
  DescribeImagesCommand,
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
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { AwsStateError, errorName } from './errors.ts';
import { projectFilters, projectTags } from './tags.ts';
import { type WaitForTiming, waiterConfig, waitFor } from './wait.ts';

/** What DescribeInstances says of one (its type, subnet and VPC for re-runs), with its id and state. */
export type FoundInstance = Instance & { instanceId: string; state: string };

/** The project's instances in the states that count as "ours and alive" for idempotent re-runs. */
export async function findInstances(ec2: EC2Client, name: string): Promise<FoundInstance[]> {
  const alive = { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] };
  const Filters = [...projectFilters(name), alive];
  const found: FoundInstance[] = [];
  for await (const page of paginateDescribeInstances({ client: ec2 }, { Filters })) {
    for (const i of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      found.push({ ...i, instanceId: i.InstanceId as string, state: i.State?.Name ?? 'unknown' });
    }
  }
  return found;
}

/**
 * Graviton instance families carry a `g` right after the generation digit (t4g, m7g, c7gn, r8g, im4gn,
 * g5g, ...), plus the first-generation a1. GPU families such as g4dn or g6 do not match.
 */
export const isGraviton = (instanceType: string): boolean => /^(a1|[a-z]+\d+g[a-z-]*)\./.test(instanceType);

/** The latest Amazon Linux 2023 AMI for the instance type's architecture, from AWS's public SSM parameter. */
export async function resolveAmi(ssm: SSMClient, ec2: EC2Client, instanceType: string) {
  const architecture = isGraviton(instanceType) ? 'arm64' : 'x86_64';
  const parameter = `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${architecture}`;
  const { Parameter } = await ssm.send(new GetParameterCommand({ Name: parameter }));
  const imageId = Parameter?.Value;
  if (!imageId) throw new AwsStateError(`SSM parameter ${parameter} has no value`);
  // The root device name is needed to set the root volume's type and encryption.
  const { Images } = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
  const rootDeviceName = Images?.[0]?.RootDeviceName;
  if (!rootDeviceName) throw new AwsStateError(`AMI ${imageId} (from ${parameter}) not found in this region`);
  return { imageId, architecture, rootDeviceName };
}

/**
 * Launches `count` instances: IMDSv2 only, an encrypted gp3 root volume, the instance profile, and the
 * project tags on instance and volume. Retries only the error RunInstances answers while a new instance
 * profile has not reached EC2 yet, bounded by `profileRetry`. Returns the new instance ids.
 */
export async function launchInstances(
  ec2: EC2Client,
  options: {
    name: string;
    count: number;
    ami: { imageId: string; rootDeviceName: string };
    instanceType: string;
    instanceProfileName: string;
    securityGroupId: string;
    subnetId?: string;
    profileRetry: WaitForTiming;
  },
): Promise<string[]> {
  const tags = projectTags(options.name);
  const command = new RunInstancesCommand({
    ImageId: options.ami.imageId,
    InstanceType: options.instanceType as never,
    MinCount: options.count,
    MaxCount: options.count,
    IamInstanceProfile: { Name: options.instanceProfileName },
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
    BlockDeviceMappings: [
      {
        DeviceName: options.ami.rootDeviceName,
        Ebs: { VolumeType: 'gp3', VolumeSize: 8, Encrypted: true, DeleteOnTermination: true },
      },
    ],
    SecurityGroupIds: [options.securityGroupId],
    SubnetId: options.subnetId,
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
  });
  return waitFor({
    ...options.profileRetry,
    what: `instance profile ${options.instanceProfileName} to become usable by EC2`,
    hint: 'IAM changes usually propagate within a minute; run again if it persists',
    check: () =>
      ec2.send(command).then(
        ({ Instances = [] }) => {
          if (!Instances.length) throw new AwsStateError('RunInstances returned no instances');
          return Instances.map((i) => i.InstanceId as string);
        },
        (err: Error) => {
          const notYet =
            errorName(err) === 'InvalidParameterValue' && /iam ?instance ?profile/i.test(err.message);
          if (!notYet) throw err;
          return undefined;
        },
      ),
  });
}

/** An SDK instance waiter that, when it gives up, throws AwsStateError: `instances <ids> <state> after N s`. */
function instanceWaiter(waiter: typeof waitUntilInstanceRunning, state: string) {
  return async (ec2: EC2Client, instanceIds: string[], timing: WaitForTiming, advice = '') => {
    await waiter(waiterConfig(ec2, timing), { InstanceIds: instanceIds }).catch((cause: Error) => {
      const message = `instances ${instanceIds.join(', ')} ${state} after ${timing.maxWaitSeconds} s${advice}`;
      throw new AwsStateError(`${message}: ${cause.message}`, { cause });
    });
  };
}

export const waitRunning = instanceWaiter(waitUntilInstanceRunning, 'not running');
const waitStopped = instanceWaiter(waitUntilInstanceStopped, 'still stopping');
const waitTerminated = instanceWaiter(waitUntilInstanceTerminated, 'not terminated');

/**
 * Re-runs reuse the project's stopped instances rather than launching more: a stopped one is started;
 * one still stopping cannot be started yet (IncorrectInstanceState), so it is first awaited until
 * stopped, bounded. Returns the ids it started.
 */
export async function startStopped(ec2: EC2Client, instances: FoundInstance[], timing: WaitForTiming) {
  const ids = (state: string) => instances.filter((i) => i.state === state).map((i) => i.instanceId);
  const stopping = ids('stopping');
  if (stopping.length) {
    const advice = ', so they cannot be started: run again later, or terminate them (npm run teardown-ec2)';
    await waitStopped(ec2, stopping, timing, advice);
  }
  const toStart = [...ids('stopped'), ...stopping];
  if (toStart.length) await ec2.send(new StartInstancesCommand({ InstanceIds: toStart }));
  return toStart;
}

/** Terminates the instances and waits until they are (which also deletes their volumes). */
export async function terminateInstances(ec2: EC2Client, instanceIds: string[], timing: WaitForTiming) {
  if (!instanceIds.length) return;
  await ec2.send(new TerminateInstancesCommand({ InstanceIds: instanceIds }));
  await waitTerminated(ec2, instanceIds, timing);
}
