import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { type Context, Hono } from 'hono';
import { accepts } from 'hono/accepts';
import { HTTPException } from 'hono/http-exception';
import { LinearRouter } from 'hono/router/linear-router';
import { NUMBER_RANGE } from '../../lib/contract.ts';
import type { Logger } from '../../lib/logger.ts';
import { bearerToken } from './auth.ts';
import { lightResponse } from './light-response.ts';
import type { RequestBindings } from './node-listener.ts';

/** The range every number is drawn from (lib/contract.ts: the agent accepts exactly this). */
const { min: MIN, max: MAX } = NUMBER_RANGE;
const TEXT = 'text/plain; charset=utf-8';

/** `c.env` as the listener fills it (node-listener.ts); undefined under `app.request()` in tests. */
type Env = { Bindings: RequestBindings | undefined };

export interface AppOptions {
  logger: Logger;
  /** Returns an integer in [min, max]; defaults to node:crypto's uniform randomInt. */
  random?: (min: number, max: number) => number;
  clock?: () => Date;
  /** When set, `/` requires `Authorization: Bearer <apiToken>`. */
  apiToken?: string | undefined;
  instance?: string;
  /** True once shutdown has begun: `/readyz` then answers 503 so no new traffic is routed here. */
  isShuttingDown?: () => boolean;
}

/**
 * A uniform integer in [min, max], both inclusive, from the operating system's CSPRNG.
 * crypto.randomInt rejects and redraws rather than taking a modulo, so there is no bias.
 */
export const uniformInt = (min: number, max: number): number => randomInt(min, max + 1);

/** A JSON answer as a light response (see createApp for why not `c.json`). */
const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  lightResponse(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });

/** Text unless the client prefers JSON; the common Accept values skip parsing. */
function wantsJson(c: Context): boolean {
  const accept = c.req.header('Accept');
  if (accept === undefined || accept === '*/*') return false;
  if (accept === 'application/json') return true;
  const type = accepts(c, {
    header: 'Accept',
    supports: ['text/plain', 'application/json'],
    default: 'text/plain',
  });
  return type === 'application/json';
}

/**
 * The whole HTTP contract, with no side effects: nothing listens until server.ts says so.
 * Responses are light ones with plain header objects (light-response.ts): no undici loaded to make
 * them, and the cheapest form for the listener in server.ts to write (node-listener.ts).
 */
export function createApp(options: AppOptions): Hono<Env> {
  const {
    logger,
    random = uniformInt,
    clock = () => new Date(),
    apiToken,
    instance = hostname(),
    isShuttingDown = () => false,
  } = options;
  const log = logger.child({ module: 'http' });
  // coldStart marks the first number this process hands out, so a poller can see scale-from-zero.
  let served = 0;

  // No middleware: every request then takes Hono's synchronous path. The request id and the log line
  // are the listener's (node-listener.ts).
  // LinearRouter: nothing to build at the first request (the default RegExpRouter compiles its matcher
  // then, about 2.5 ms of a cold start), and for three static paths it matches as fast (docs/bench.md).
  const app = new Hono<Env>({ router: new LinearRouter() });

  const number = (c: Context): Response => {
    const type = wantsJson(c) ? 'application/json' : TEXT;
    const headers = { 'Content-Type': type, 'Cache-Control': 'no-store' };
    if (c.req.method === 'HEAD') return lightResponse(null, { headers });
    const number = random(MIN, MAX);
    const coldStart = served === 0;
    served += 1;
    if (type === TEXT) return lightResponse(`${number}\n`, { headers });
    const generatedAt = clock().toISOString();
    return lightResponse(JSON.stringify({ number, min: MIN, max: MAX, generatedAt, coldStart, instance }), {
      headers,
    });
  };
  // No pass-through middleware when there is no token: every step costs on every request.
  if (apiToken) app.get('/', bearerToken(apiToken), number);
  else app.get('/', number);

  app.get('/healthz', () => json(200, { status: 'ok' }));
  app.get('/readyz', () =>
    isShuttingDown() ? json(503, { status: 'shutting down' }) : json(200, { status: 'ready' }),
  );

  // Unmatched requests only, so the hot path never pays for this: every route is GET (and so HEAD), so a
  // known path with another method is 405 with Allow, not 404 (what hono/method-not-allowed does,
  // without a middleware on every request).
  const paths = new Set(app.routes.map((r) => r.path).filter((p) => p !== '/*'));
  app.notFound((c) => {
    const { method, path } = c.req;
    if (paths.has(path) && method !== 'GET' && method !== 'HEAD') {
      return json(
        405,
        { error: 'method_not_allowed', message: `${method} is not allowed here; use GET or HEAD` },
        { Allow: 'GET, HEAD' },
      );
    }
    return json(404, { error: 'not_found', message: `no route for ${method} ${path}` });
  });
  app.onError((err, c) => {
    // bearer-auth's 400 and 401 arrive as HTTPExceptions carrying their answer: not errors of ours.
    if (err instanceof HTTPException) return err.getResponse();
    log.error({ err, reqId: c.env?.requestId }, 'unhandled error');
    return json(500, { error: 'internal', message: 'internal error' });
  });
  return app;
}
