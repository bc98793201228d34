import type { HttpBindings } from '@hono/node-server';
import type { MiddlewareHandler } from 'hono';
import type { RequestIdVariables } from 'hono/request-id';
import type { Logger } from '../../lib/logger.ts';

/** `c.env` as @hono/node-server fills it (undefined under `app.request()`), and hono/request-id's id. */
export type Env = { Bindings: HttpBindings | undefined; Variables: RequestIdVariables };

/**
 * One line per request once the app has answered: reqId (hono/request-id), method, path, status and
 * durationMs. A 5xx is "request failed" at `error`, so LOG_LEVEL=warn keeps it, except a 503: only
 * /readyz answers one, on purpose, while every shutdown drains, and an alert on errors must not fire
 * for it. "request aborted" when the client went away before the answer could be sent; "request" otherwise.
 */
export function requestLog(logger: Logger): MiddlewareHandler<Env> {
  return async function requestLog(c, next) {
    const start = performance.now();
    await next();
    const { status } = c.res;
    const level = status >= 500 && status !== 503 ? 'error' : 'info';
    if (!logger.isLevelEnabled(level)) return;
    const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
    const line = { reqId: c.get('requestId'), method: c.req.method, path: c.req.path, status, durationMs };
    if (level === 'error') logger.error(line, 'request failed');
    else logger.info(line, c.env?.outgoing.destroyed ? 'request aborted' : 'request');
  };
}
