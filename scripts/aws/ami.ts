import { DescribeImagesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { AwsStateError } from './errors.ts';

const AL2023_PARAMETER = '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-';

/**
 * Graviton instance families carry a `g` right after the generation digit (t4g, m7g, c7gn, r8g, im4gn,
 * g5g, ...), plus the first-generation a1. GPU families such as g4dn or g6 do not match.
 */
export function isGraviton(instanceType: string): boolean {
  return /^(a1|[a-z]+\d+g[a-z-]*)\./.test(instanceType);
}

export function architectureFor(instanceType: string): 'arm64' | 'x86_64' {
  return isGraviton(instanceType) ? 'arm64' : 'x86_64';
}

export interface Ami {
  imageId: string;
  architecture: 'arm64' | 'x86_64';
  rootDeviceName: string;
  parameter: string;
}

/** The latest Amazon Linux 2023 AMI for the instance type's architecture, from AWS's public SSM parameter. */
export async function resolveAmi(ssm: SSMClient, ec2: EC2Client, instanceType: string): Promise<Ami> {
  const architecture = architectureFor(instanceType);
  const parameter = `${AL2023_PARAMETER}${architecture}`;
  const { Parameter } = await ssm.send(new GetParameterCommand({ Name: parameter }));
  const imageId = Parameter?.Value;
  if (!imageId) throw new AwsStateError(`SSM parameter ${parameter} has no value`);
  // The root device name is needed to set the root volume's type and encryption.
  const { Images } = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
  const rootDeviceName = Images?.[0]?.RootDeviceName;
  if (!rootDeviceName) throw new AwsStateError(`AMI ${imageId} (from ${parameter}) not found in this region`);
  return { imageId, architecture, rootDeviceName, parameter };
}
