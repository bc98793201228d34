import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../../lib/logger.ts';

/** What hono/request-id accepts of an incoming X-Request-Id: word characters, '-' and '=', at most 255. */
const SANE_ID = /^[\w\-=]{1,255}$/;

const line = (req: IncomingMessage, res: ServerResponse, { durationMs }: { durationMs: number }) => ({
  reqId: req.id,
  method: req.method,
  path: req.url?.split('?')[0],
  status: res.statusCode,
  durationMs,
});

/**
 * The request id and the one log line per request, with pino-http in front of the Hono listener, so
 * that every request has them, also one Hono never sees (a Host that makes no URL gets 400 before).
 * The id: a sane incoming X-Request-Id (a proxy's or a client's), else a fresh UUID; echoed as
 * X-Request-Id; the app reads it as `c.env.incoming.id`. The line: reqId, method, path, status and
 * durationMs (whole milliseconds, pino-http's clock), at `error` for a 5xx ("request failed") and
 * `info` otherwise, so LOG_LEVEL=warn keeps the failures only.
 */
export function requestLog(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId(req, res) {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && SANE_ID.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    customSuccessMessage: (_req, res) => (res.writableFinished ? 'request' : 'request aborted'),
    customErrorMessage: () => 'request failed',
    customAttributeKeys: { responseTime: 'durationMs' },
    customSuccessObject: line,
    customErrorObject: (req, res, _err, fields) => line(req, res, fields),
    // The fields above and nothing else: no serialized request (its headers) on any line.
    wrapSerializers: false,
    serializers: { req: () => undefined },
  });
}
