import type { Server } from 'node:http';

export type HttpServer = Server;

/**
 * Node's server timeouts, set on purpose rather than left to defaults.
 * - headersTimeout 20 s: a client that trickles its headers (slowloris) is cut off well before it can
 *   pin a socket; honest clients, including Knative's queue-proxy over loopback, send them in microseconds.
 * - requestTimeout 30 s: no request here has a body or takes real work; 30 s bounds any stuck one.
 * - keepAliveTimeout 65 s: longer than the idle timeouts of the proxies in front (60 s on common load
 *   balancers), so the proxy, not us, closes an idle connection and never reuses one we just closed.
 * - maxHeaderSize stays Node's 16 KiB: a larger header block gets 431.
 */
export const TIMEOUTS = {
  headersTimeout: 20_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 65_000,
} as const;

export function tuneTimeouts(server: HttpServer): void {
  server.headersTimeout = TIMEOUTS.headersTimeout;
  server.requestTimeout = TIMEOUTS.requestTimeout;
  server.keepAliveTimeout = TIMEOUTS.keepAliveTimeout;
}
