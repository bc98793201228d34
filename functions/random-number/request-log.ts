import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/logger.ts';

// What hono/request-id accepts: word characters, '-' and '=', at most 255 of them.
const SANE_ID = /^[\w\-=]{1,255}$/;

/** The request's id: a sane incoming X-Request-Id (a proxy's or a client's), else a fresh UUID. */
export function requestId(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && SANE_ID.test(incoming) ? incoming : randomUUID();
}

export interface RequestLine {
  reqId: string;
  method: string;
  path: string;
  status: number;
  /** performance.now() when the request arrived. */
  start: number;
}

/**
 * One log line per request, once the response is decided: request id, method, path, status,
 * duration; `error` for a 5xx, `info` otherwise. Called by the listener (node-listener.ts) rather
 * than as Hono middleware: a middleware makes every request take Hono's asynchronous path, which
 * measured about a quarter of the service's CPU per request (docs/bench.md).
 */
export function requestLog(
  logger: Logger,
  now: () => number = performance.now.bind(performance),
): (line: RequestLine) => void {
  return function requestLog({ reqId, method, path, status, start }) {
    const failed = status >= 500;
    // With request lines off (LOG_LEVEL=warn) not even the object is built.
    if (!logger.isLevelEnabled(failed ? 'error' : 'info')) return;
    const line = { reqId, method, path, status, durationMs: Math.round((now() - start) * 1000) / 1000 };
    if (failed) logger.error(line, 'request failed');
    else logger.info(line, 'request');
  };
}
