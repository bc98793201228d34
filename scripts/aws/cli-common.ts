import { parseIntFlag } from './args.ts';
import { DEFAULT_WAITS, type Waits } from './waits.ts';

/** Flags every EC2 command shares. */
export const COMMON_FLAGS = {
  name: { type: 'string' },
  region: { type: 'string' },
  'poll-interval-ms': { type: 'string' },
} as const;

export const COMMON_HELP = `  --name NAME             resources are named and tagged NAME (default random-number)
  --region REGION         AWS region (default: AWS_REGION or your profile's region)
  --poll-interval-ms N    how often waits poll (default ${DEFAULT_WAITS.pollIntervalMs}; small against an emulator)
  -h, --help              this text

Credentials come from the usual AWS chain: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, ...`;

export function waitsFrom(value: string | undefined): Waits {
  return {
    ...DEFAULT_WAITS,
    pollIntervalMs: parseIntFlag('--poll-interval-ms', value, DEFAULT_WAITS.pollIntervalMs, 10, 60_000),
  };
}
