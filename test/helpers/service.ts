import { resolve } from 'node:path';
import { json, type Started, startProcess, type Teardown } from './process.ts';

/** The Node.js 22 binary `make test` fetches (production's runtime), when present. */
export const NODE22 = process.env.NODE22
  ? resolve(import.meta.dirname, '../..', process.env.NODE22)
  : undefined;

export const SERVICE_BUNDLE = resolve(import.meta.dirname, '../../dist/random-number.mjs');

export interface Service extends Started {
  url: string;
  port: number;
}

/**
 * Starts the built service bundle as a real process on 127.0.0.1 and a port the OS picks, and waits
 * for its `listening` log line. Killed when the test ends.
 */
export async function startService(
  t: Teardown,
  env: Record<string, string> = {},
  bundle = SERVICE_BUNDLE,
  node = process.execPath,
): Promise<Service> {
  const started = startProcess(t, node, [bundle], {
    env: { PORT: '0', HOST: '127.0.0.1', ...env },
  });
  const line = await started.waitForLine((l) => json(l).msg === 'listening');
  const port = json(line).port as number;
  return Object.assign(started, { port, url: `http://127.0.0.1:${port}` });
}
