import type { MiddlewareHandler } from 'hono';
import type { Logger } from '../../lib/logger.ts';

/** One log line per request, after the response is decided: method, path, status, duration, request id. */
export function requestLog(
  logger: Logger,
  now: () => number = performance.now.bind(performance),
): MiddlewareHandler {
  return async function requestLog(c, next) {
    const start = now();
    await next();
    const status = c.res.status;
    const line = {
      reqId: c.get('requestId') as string | undefined,
      method: c.req.method,
      path: c.req.path,
      status,
      durationMs: Math.round((now() - start) * 1000) / 1000,
    };
    if (status >= 500) logger.error(line, 'request failed');
    else logger.info(line, 'request');
  };
}
