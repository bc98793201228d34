import { resolve } from 'node:path';
import type { ServerSpec } from './server-process.ts';

const root = resolve(import.meta.dirname, '../..');

export const SERVICE_BUNDLE = resolve(root, 'dist/random-number.mjs');

/** A server the bench runs: `name` is its key (BENCH_PEERS), `label` how tables show it. */
export interface Peer extends ServerSpec {
  label: string;
}

/**
 * Every server in the same run, each a real process on the same core. `bare` is the limit and the
 * denominator of every ratio; `hono` is the chosen parts alone (Hono on @hono/node-server, no
 * middleware), the floor of any service built on them; `hono-request-id` adds Hono's own request id,
 * which the service's contract needs at every log level; `fastify` is what a user would pick instead; the
 * service runs as shipped (LOG_LEVEL=info: one JSON line per request) and with request lines off
 * (LOG_LEVEL=warn).
 */
export const PEERS: readonly Peer[] = [
  {
    name: 'bare',
    label: 'bare node:http (the limit)',
    file: resolve(root, 'scripts/bench/baseline-server.mjs'),
  },
  {
    name: 'hono',
    label: 'Hono on node-server, route only',
    file: resolve(root, 'scripts/bench/hono-server.mjs'),
  },
  {
    name: 'hono-request-id',
    label: 'Hono on node-server, + hono/request-id',
    file: resolve(root, 'scripts/bench/hono-server.mjs'),
    env: { REQUEST_ID: '1' },
  },
  {
    name: 'fastify',
    label: 'Fastify 5, default request logging',
    file: resolve(root, 'scripts/bench/fastify-server.mjs'),
  },
  { name: 'service', label: 'this service, default (a line per request)', file: SERVICE_BUNDLE },
  {
    name: 'service-warn',
    label: 'this service, LOG_LEVEL=warn',
    file: SERVICE_BUNDLE,
    env: { LOG_LEVEL: 'warn' },
  },
];

export const PEER_NAMES = PEERS.map((p) => p.name);
