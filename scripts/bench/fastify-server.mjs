// The framework a user would pick instead: Fastify 5 with its default request logging (`logger: true`,
// pino on stdout: an "incoming request" and a "request completed" line per request), answering GET /
// exactly as the service does (a node:crypto integer 0..100, a newline, text/plain; charset=utf-8,
// Cache-Control: no-store).
import { randomInt } from 'node:crypto';
import Fastify from 'fastify';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';

const app = Fastify({ logger: true });
app.get('/', (_request, reply) => {
  reply.header('Cache-Control', 'no-store').type('text/plain; charset=utf-8');
  return `${randomInt(0, 101)}\n`;
});

await app.listen({ port, host });
const stop = () => app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
