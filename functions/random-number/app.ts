import { hostname } from 'node:os';
import { Hono, type MiddlewareHandler } from 'hono';
import { accepts } from 'hono/accepts';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { type RequestIdVariables, requestId } from 'hono/request-id';
import type { Logger } from '../../lib/logger.ts';
import { bearerToken } from './auth.ts';
import { uniformInt } from './random.ts';
import { requestLog } from './request-log.ts';

export const MIN = 0;
export const MAX = 100;
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

export interface RandomNumber {
  number: number;
  min: number;
  max: number;
  generatedAt: string;
  coldStart: boolean;
  instance: string;
}

/** The whole HTTP contract, with no side effects: nothing listens until server.ts says so. */
export function createApp(options: AppOptions): Hono<{ Variables: RequestIdVariables }> {
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

  const app = new Hono<{ Variables: RequestIdVariables }>();
  app.use(requestId());
  app.use(requestLog(log));
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        c.json(
          {
            error: 'method_not_allowed',
            message: `${c.req.method} is not allowed here; use ${methods.join(' or ')}`,
          },
          405,
          { Allow: methods.join(', ') },
        ),
    }),
  );

  const auth: MiddlewareHandler = apiToken ? bearerToken(apiToken) : (_c, next) => next();
  app.get('/', auth, (c) => {
    c.header('Cache-Control', 'no-store');
    const type = accepts(c, {
      header: 'Accept',
      supports: ['text/plain', 'application/json'],
      default: 'text/plain',
    });
    if (c.req.method === 'HEAD') {
      return c.body(null, 200, {
        'Content-Type': type === 'application/json' ? 'application/json' : TEXT,
      });
    }
    const number = random(MIN, MAX);
    const coldStart = served === 0;
    served += 1;
    if (type === 'application/json') {
      const body: RandomNumber = {
        number,
        min: MIN,
        max: MAX,
        generatedAt: clock().toISOString(),
        coldStart,
        instance,
      };
      return c.json(body);
    }
    return c.body(`${number}\n`, 200, { 'Content-Type': TEXT });
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) =>
    isShuttingDown() ? c.json({ status: 'shutting down' }, 503) : c.json({ status: 'ready' }),
  );

  app.notFound((c) =>
    c.json({ error: 'not_found', message: `no route for ${c.req.method} ${c.req.path}` }, 404),
  );
  app.onError((err, c) => {
    log.error({ err, reqId: c.get('requestId') }, 'unhandled error');
    return c.json({ error: 'internal', message: 'internal error' }, 500);
  });
  return app;
}
