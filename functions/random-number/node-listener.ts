import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener } from 'node:http';
import type { Logger } from '../../lib/logger.ts';
import { LightResponse } from './light-response.ts';

/** What the handler gets besides the request (Hono: `c.env`). */
export interface RequestBindings {
  requestId: string;
}

/** What a Hono app's `fetch` is given and returns, as far as this listener is concerned. */
export type FetchHandler = (request: Request, env: RequestBindings) => Response | Promise<Response>;

/** Request headers as the fetch API reads them (Hono only calls `get`), from Node's parsed object. */
class IncomingHeaders {
  readonly #headers: IncomingMessage['headers'];
  constructor(headers: IncomingMessage['headers']) {
    this.#headers = headers;
  }
  get(name: string): string | null {
    const value = this.#headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : (value ?? null);
  }
}

// A Host that is a plain name or address with an optional port 0-65535; anything else goes through URL
// (twice as slow a request: keep ports like 8080 and 31416 on this path).
const PLAIN_HOST =
  /^[a-z0-9._-]+(?::(?:\d{1,4}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5]))?$/i;
// An origin-form target needing no normalisation (no dot segments, backslashes or odd characters).
const PLAIN_TARGET = /^\/[!#$&-;=?-[\]_a-z~]*$/i;
const DOT_SEGMENT = /\/\.\.?(?:[/?#]|$)/;
// What hono/request-id accepts of an incoming X-Request-Id: word characters, '-' and '=', at most 255.
const SANE_ID = /^[\w\-=]{1,255}$/;

/** The absolute URL of a request, or undefined when its Host or target cannot make one (→ 400). */
export function requestUrl(host: string | undefined, target: string | undefined): string | undefined {
  const authority = host || 'localhost';
  const path = target || '/';
  if (PLAIN_HOST.test(authority) && PLAIN_TARGET.test(path) && !DOT_SEGMENT.test(path)) {
    return `http://${authority}${path}`;
  }
  try {
    // The Host must be an authority and nothing more (URL would read 'a/b' as host 'a', path '/b').
    if (/[/?#@\\\s]/.test(authority)) return undefined;
    const origin = new URL(`http://${authority}`);
    // Origin-form targets are normalised (dot segments, percent-encoding); an absolute-form one (a
    // proxy's `GET http://x/ HTTP/1.1`) is reduced to its path.
    const url = path.startsWith('/') ? new URL(path, origin) : new URL(path);
    return `${origin.origin}${url.pathname}${url.search}`;
  } catch {
    return undefined;
  }
}

const BAD_REQUEST = JSON.stringify({
  error: 'bad_request',
  message: 'the Host header or request target is invalid',
});
const INTERNAL = JSON.stringify({ error: 'internal', message: 'internal error' });
const JSON_TYPE = { 'content-type': 'application/json' };

/**
 * A node:http request listener that runs a fetch handler (Hono's `app.fetch`): a lean stand-in for
 * @hono/node-server, which loads undici and node:http2 at import (most of the service's start-up) and
 * allocates more per request than these routes need. It also does what every request needs, without
 * a Hono middleware (which would make every request asynchronous, about a quarter of the service's CPU
 * per request: docs/bench.md): the request id (a sane incoming X-Request-Id, a proxy's or a client's,
 * else a fresh UUID), echoed as X-Request-Id and handed to the app as `c.env.requestId`, and the log
 * line. A handler that answers synchronously is written synchronously.
 * `logger` gets a line per request; `onError` a failure after the handler (which turns its own errors
 * into 500 answers).
 */
export function createListener(
  fetch: FetchHandler,
  { logger, onError }: { logger: Logger; onError: (err: unknown, reqId: string) => void },
): RequestListener {
  return (incoming, outgoing) => {
    const start = performance.now();
    const given = incoming.headers['x-request-id'];
    const reqId = typeof given === 'string' && SANE_ID.test(given) ? given : randomUUID();
    const method = incoming.method ?? 'GET';
    const url = requestUrl(incoming.headers.host, incoming.url);
    // Request id, method, path (of the URL above, query left out), status, duration; `error` for a 5xx.
    const done = (status: number) => {
      const level = status >= 500 ? 'error' : 'info';
      // With request lines off (LOG_LEVEL=warn) not even the object is built.
      if (!logger.isLevelEnabled(level)) return;
      const path = url?.slice(url.indexOf('/', 7)).split('?', 1)[0] ?? incoming.url ?? '';
      const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
      if (level === 'error') logger.error({ reqId, method, path, status, durationMs }, 'request failed');
      else logger.info({ reqId, method, path, status, durationMs }, 'request');
    };
    // A whole answer with its request id, and a Content-Length rather than chunks.
    const send = (status: number, headers: OutgoingHttpHeaders, body: string | Buffer | null) => {
      headers['x-request-id'] = reqId;
      if (body !== null) headers['content-length'] = String(Buffer.byteLength(body));
      outgoing.writeHead(status, headers);
      outgoing.end(body ?? undefined);
      done(status);
    };
    const fail = (err: unknown) => {
      onError(err, reqId);
      if (!outgoing.headersSent) return send(500, { ...JSON_TYPE }, INTERNAL);
      outgoing.destroy();
      done(500);
    };
    // Anything else Hono may hand back (HEAD, bearer-auth's 401, a stream body): read whole, then written.
    const writeReal = async (res: Response) => {
      const body = res.body ? Buffer.from(await res.arrayBuffer()) : null;
      outgoing.setHeaders(res.headers);
      send(res.status, {}, body);
    };
    const write = (res: Response) => {
      if (res instanceof LightResponse) send(res.status, res.headers.record, res.text_);
      else writeReal(res).catch(fail);
    };

    if (url === undefined) return send(400, { ...JSON_TYPE, connection: 'close' }, BAD_REQUEST);
    let res: Response | Promise<Response>;
    try {
      res = fetch({ method, url, headers: new IncomingHeaders(incoming.headers) } as unknown as Request, {
        requestId: reqId,
      });
    } catch (err) {
      return fail(err);
    }
    if (res instanceof Promise) res.then(write, fail);
    else write(res);
  };
}
