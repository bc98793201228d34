import * as z from 'zod/mini';
import { intVar, logLevelVar, parseEnv } from '../../lib/env.ts';
import { TOKEN_SYNTAX } from './auth.ts';

export interface ServiceConfig {
  port: number;
  /** undefined: every interface (IPv6 and IPv4), as a pod needs. */
  host: string | undefined;
  logLevel: string;
  apiToken: string | undefined;
  shutdownTimeoutMs: number;
}

const schema = z.object({
  PORT: z._default(intVar(0, 65535), 8080),
  HOST: z.optional(z.string()),
  LOG_LEVEL: z._default(logLevelVar, 'info'),
  API_TOKEN: z.optional(
    z.string().check(
      z.regex(TOKEN_SYNTAX, {
        error:
          'must be a Bearer token: letters, digits and -._~+/ (then = padding), as `openssl rand -hex 32` makes',
      }),
    ),
  ),
  SHUTDOWN_TIMEOUT_MS: z._default(intVar(0, 3_600_000), 10_000),
});

/** Reads the service's environment once, at start. Throws ConfigError naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): ServiceConfig {
  const parsed = parseEnv(schema, env);
  return {
    port: parsed.PORT,
    host: parsed.HOST,
    logLevel: parsed.LOG_LEVEL,
    apiToken: parsed.API_TOKEN,
    shutdownTimeoutMs: parsed.SHUTDOWN_TIMEOUT_MS,
  };
}
