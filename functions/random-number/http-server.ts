import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';

/**
 * Node's server timeouts, set on purpose rather than left to defaults:
 * - headersTimeout 20 s: a client that trickles its headers (slowloris) is cut off well before it can
 *   pin a socket; honest clients, including Knative's queue-proxy over loopback, send them at once.
 * - requestTimeout 30 s: no request here has a body or takes real work; 30 s bounds any stuck one.
 * - keepAliveTimeout 65 s: longer than the idle timeouts of the proxies in front (60 s on common load
 *   balancers), so the proxy, not us, closes an idle connection and never reuses one we just closed.
 * - maxHeaderSize stays Node's 16 KiB: a larger header block gets 431.
 * - connectionsCheckingInterval 1 s: Node enforces the first two only when it checks, by default every
 *   30 s, which would let a trickling client hold a socket for up to 50 s.
 */
const TIMEOUTS = {
  headersTimeout: 20_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 65_000,
  connectionsCheckingInterval: 1_000,
};

/** The server as server.ts runs it; tests build the same one around apps with middleware of their own. */
export function createHttpServer(app: Pick<Parameters<typeof createAdaptorServer>[0], 'fetch'>): Server {
  return createAdaptorServer({ fetch: app.fetch, serverOptions: TIMEOUTS }) as Server;
}
