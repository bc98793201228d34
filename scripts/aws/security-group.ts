import {
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type EC2Client,
  type SecurityGroup,
} from '@aws-sdk/client-ec2';
import { ConfigError } from '../../lib/errors.ts';
import { AwsStateError, errorName } from './errors.ts';
import { projectFilters, projectTags } from './tags.ts';
import { type WaitForTiming, waitFor } from './wait.ts';

/** The VPC to use: the subnet's when one is given, else the region's default VPC. */
export async function resolveVpc(ec2: EC2Client, subnetId?: string): Promise<string> {
  // A filter, not SubnetIds: an unknown subnet is then an empty answer rather than an error.
  const vpc = subnetId
    ? (await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'subnet-id', Values: [subnetId] }] })))
        .Subnets?.[0]?.VpcId
    : (await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] })))
        .Vpcs?.[0]?.VpcId;
  if (vpc) return vpc;
  throw new ConfigError(
    subnetId
      ? `--subnet ${subnetId}: no such subnet in this region`
      : 'this region has no default VPC: pass --subnet <subnet-id> (with a route to the internet)',
  );
}

export async function findSecurityGroup(ec2: EC2Client, name: string, vpcId: string) {
  const Filters = [
    { Name: 'group-name', Values: [name] },
    { Name: 'vpc-id', Values: [vpcId] },
  ];
  const { SecurityGroups } = await ec2.send(new DescribeSecurityGroupsCommand({ Filters }));
  const group = SecurityGroups?.[0];
  if (group && !group.Tags?.some((t) => t.Key === 'Project' && t.Value === name)) {
    throw new AwsStateError(
      `security group "${name}" (${group.GroupId}) exists but is not tagged Project=${name}: it is not ours; choose another --name`,
    );
  }
  return group?.GroupId;
}

/**
 * Creates security group `<name>` with no inbound rules: the agent only makes outbound calls (the
 * service, SSM), and the default egress rule allows them. A run reuses the group findSecurityGroup found.
 */
export async function createSecurityGroup(ec2: EC2Client, options: { name: string; vpcId: string }) {
  const { GroupId } = await ec2.send(
    new CreateSecurityGroupCommand({
      GroupName: options.name,
      VpcId: options.vpcId,
      Description: `random-number agent (${options.name}): no inbound rules, outbound only`,
      TagSpecifications: [{ ResourceType: 'security-group', Tags: projectTags(options.name) }],
    }),
  );
  if (!GroupId) throw new Error(`CreateSecurityGroup for ${options.name} returned no group id`);
  return GroupId;
}

/** The security groups tagged Project=<name>: what teardown removes. */
export async function findTaggedGroups(ec2: EC2Client, name: string) {
  const command = new DescribeSecurityGroupsCommand({ Filters: projectFilters(name) });
  return (await ec2.send(command)).SecurityGroups ?? [];
}

/**
 * Deletes the groups. A terminated instance's network interface can hold a group for a little while
 * (DependencyViolation), so that error is retried, bounded.
 */
export async function deleteSecurityGroups(ec2: EC2Client, groups: SecurityGroup[], timing: WaitForTiming) {
  for (const { GroupId } of groups) {
    await waitFor({
      ...timing,
      what: `security group ${GroupId} to be released by its network interfaces`,
      check: async () => {
        try {
          await ec2.send(new DeleteSecurityGroupCommand({ GroupId }));
        } catch (err) {
          if (errorName(err) === 'DependencyViolation') return undefined;
          if (errorName(err) !== 'InvalidGroup.NotFound') throw err;
        }
        return true;
      },
    });
  }
}
