import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../lib/errors.ts';

export const DEFAULT_BUNDLE = 'dist/ec2-agent.mjs';
export const DEFAULT_INSTALL_SCRIPT = 'ec2-agent/install.sh';

/** The built agent bundle and install.sh, read from the checkout. */
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
  };
}

/** The flags install.sh gets on the instance, besides --bundle and --sha256. */
export function installArgs(options: {
  serviceUrl: string;
  schedule: string;
  tokenParameter?: string;
  region?: string;
}): string[] {
  return [
    '--service-url',
    options.serviceUrl,
    '--schedule',
    options.schedule,
    ...(options.tokenParameter ? ['--api-token-parameter', options.tokenParameter] : []),
    ...(options.region ? ['--aws-region', options.region] : []),
  ];
}
