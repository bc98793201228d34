import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../lib/errors.ts';

export const DEFAULT_BUNDLE = 'dist/ec2-agent.mjs';
export const DEFAULT_INSTALL_SCRIPT = 'ec2-agent/install.sh';
export const UNIT_FILE = 'ec2-agent/random-number-agent.service';

/** The built agent bundle, install.sh and the systemd unit, read from the checkout. */
export async function readAgentFiles(paths: { bundle?: string; installScript?: string } = {}) {
  const bundlePath = paths.bundle ?? DEFAULT_BUNDLE;
  const installPath = paths.installScript ?? DEFAULT_INSTALL_SCRIPT;
  const read = async (path: string, help: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new ConfigError(`cannot read ${path}: ${help}`, { cause: err });
    }
  };
  return {
    bundle: await read(bundlePath, 'build the agent first with `npm run build` (or `make build`)'),
    installScript: await read(installPath, 'run from the root of the random-number checkout'),
    unit: await read(UNIT_FILE, 'run from the root of the random-number checkout'),
  };
}

/** The flags install.sh gets on the instance, besides --bundle and --sha256. */
export function installArgs(options: {
  serviceUrl: string;
  schedule: string;
  outputFile?: string;
  tokenParameter?: string;
  region?: string;
}): string[] {
  return [
    '--service-url',
    options.serviceUrl,
    '--schedule',
    options.schedule,
    ...(options.outputFile ? ['--output-file', options.outputFile] : []),
    ...(options.tokenParameter ? ['--api-token-parameter', options.tokenParameter] : []),
    ...(options.region ? ['--aws-region', options.region] : []),
  ];
}
