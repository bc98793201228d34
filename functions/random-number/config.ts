import * as z from 'zod/mini';
import { intVar, logLevelVar, parseEnv, tokenVar } from '../../lib/env.ts';

const schema = z.object({
  PORT: z._default(intVar(0, 65535), 8080),
  // Unset: every interface (IPv6 and IPv4), as a pod needs.
  HOST: z.optional(z.string()),
  LOG_LEVEL: z._default(logLevelVar, 'info'),
  API_TOKEN: z.optional(tokenVar),
  SHUTDOWN_TIMEOUT_MS: z._default(intVar(0, 3_600_000), 10_000),
});

/** Reads the service's environment once, at start. Throws ConfigError naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const { PORT, HOST, LOG_LEVEL, API_TOKEN, SHUTDOWN_TIMEOUT_MS } = parseEnv(schema, env);
  return {
    port: PORT,
    host: HOST,
    logLevel: LOG_LEVEL,
    apiToken: API_TOKEN,
    shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
  };
}

/** The start-up warning for an API_TOKEN that is set but empty: read as unset, so nothing is protected. */
export function emptyTokenWarning(env: Record<string, string | undefined> = process.env) {
  if (env.API_TOKEN !== '') return undefined;
  return 'API_TOKEN is set but empty: treated as unset, so the service runs WITHOUT auth; set a token or unset it';
}
