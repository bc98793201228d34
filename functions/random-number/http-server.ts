import { createServer, type Server } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { Logger } from '../../lib/logger.ts';
import { requestLog } from './request-log.ts';

/**
 * Node's server timeouts, set on purpose rather than left to defaults:
 * - headersTimeout 20 s: a client that trickles its headers (slowloris) is cut off well before it can
 *   pin a socket; honest clients, including Knative's queue-proxy over loopback, send them at once.
 * - requestTimeout 30 s: no request here has a body or takes real work; 30 s bounds any stuck one.
 * - keepAliveTimeout 65 s: longer than the idle timeouts of the proxies in front (60 s on common load
 *   balancers), so the proxy, not us, closes an idle connection and never reuses one we just closed.
 * - maxHeaderSize stays Node's 16 KiB: a larger header block gets 431.
 */
const TIMEOUTS = { headersTimeout: 20_000, requestTimeout: 30_000, keepAliveTimeout: 65_000 };

/**
 * The server as server.ts runs it: `app` through @hono/node-server, behind the request id and the
 * request line (request-log.ts). Tests build the same server around apps with middleware of their own.
 */
export function createHttpServer(
  app: { fetch: Parameters<typeof getRequestListener>[0] },
  { logger }: { logger: Logger },
): Server {
  const log = requestLog(logger);
  const handle = getRequestListener(app.fetch);
  return createServer(TIMEOUTS, (incoming, outgoing) => {
    log(incoming, outgoing);
    handle(incoming, outgoing);
  });
}
