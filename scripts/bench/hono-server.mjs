// The chosen parts alone: Hono on @hono/node-server, the route and nothing else (no middleware, no
// logging), answering GET / exactly as the service and bare node:http do. What the service costs
// beyond this is its middleware (the request id, the request line); what this costs beyond bare
// node:http is the framework's own per-request work, which no setting of ours removes.
// With REQUEST_ID=1 it also runs hono/request-id, the part the service's contract needs at every log
// level (an id kept or made, echoed in X-Request-Id): the floor of the service at LOG_LEVEL=warn.
import { randomInt } from 'node:crypto';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { LinearRouter } from 'hono/router/linear-router';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' };

const app = new Hono({ router: new LinearRouter() });
if (process.env.REQUEST_ID === '1') app.use(requestId());
app.get('/', (c) => c.body(`${randomInt(0, 101)}\n`, 200, headers));

const server = createAdaptorServer({ fetch: app.fetch });
server.listen(port, host);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
