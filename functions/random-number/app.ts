import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { type Context, Hono } from 'hono';
import { accepts } from 'hono/accepts';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { LinearRouter } from 'hono/router/linear-router';
import { NUMBER_RANGE } from '../../lib/contract.ts';
import type { Logger } from '../../lib/logger.ts';
import { bearerToken } from './auth.ts';
import { type Env, requestLog } from './request-log.ts';

/** The range every number is drawn from (lib/contract.ts: the agent accepts exactly this). */
const { min: MIN, max: MAX } = NUMBER_RANGE;
const TEXT = 'text/plain; charset=utf-8';

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

/** The whole HTTP contract, with no side effects: nothing listens until server.ts says so. */
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

  // LinearRouter: nothing to compile at the first request, and as fast as the default for three
  // static paths.
  const app = new Hono<Env>({ router: new LinearRouter() });
  app.use(requestId(), requestLog(log));

  const number = (c: Context<Env>) => {
    const type = wantsJson(c) ? 'application/json' : TEXT;
    c.header('Cache-Control', 'no-store');
    c.header('Content-Type', type);
    if (c.req.method === 'HEAD') return c.body(null);
    const number = random(MIN, MAX);
    const coldStart = served === 0;
    served += 1;
    if (type === TEXT) return c.body(`${number}\n`);
    return c.json({ number, min: MIN, max: MAX, generatedAt: clock().toISOString(), coldStart, instance });
  };
  if (apiToken) app.get('/', bearerToken(apiToken), number);
  else app.get('/', number);

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) =>
    isShuttingDown() ? c.json({ status: 'shutting down' }, 503) : c.json({ status: 'ready' }),
  );

  // Every route is GET (and so HEAD): a known path with another method is 405 with Allow, not 404.
  // Here rather than hono/method-not-allowed so that only unmatched requests pay for the check.
  const paths = new Set(app.routes.map((r) => r.path).filter((p) => p !== '/*'));
  app.notFound((c) => {
    const { method, path } = c.req;
    if (paths.has(path) && method !== 'GET' && method !== 'HEAD') {
      const message = `${method} is not allowed here; use GET or HEAD`;
      return c.json({ error: 'method_not_allowed', message }, 405, { Allow: 'GET, HEAD' });
    }
    return c.json({ error: 'not_found', message: `no route for ${method} ${path}` }, 404);
  });
  app.onError(async (err, c) => {
    // bearer-auth's 400 and 401 arrive as HTTPExceptions carrying their answer: not errors of ours.
    // Through c.newResponse, so the answer keeps the X-Request-Id set before it (getResponse() alone drops it);
    // its body read first, so it goes out with a Content-Length like every other answer, not in chunks.
    if (err instanceof HTTPException) {
      const answer = err.getResponse();
      return c.newResponse(await answer.text(), answer);
    }
    log.error({ err, reqId: c.get('requestId') }, 'unhandled error');
    return c.json({ error: 'internal', message: 'internal error' }, 500);
  });
  return app;
}
