import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
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
// Bound once: `performance` is a getter on the global object, and this runs twice per request.
const now = performance.now.bind(performance);

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

/** The path of an absolute URL that requestUrl built (`http://authority/path?query`), query left out. */
function pathOf(url: string): string {
  const from = url.indexOf('/', 7);
  const query = url.indexOf('?', from);
  return url.slice(from, query === -1 ? undefined : query);
}

/** Writes a whole answer with its request id, and a Content-Length rather than chunks. */
function send(
  outgoing: ServerResponse,
  reqId: string,
  status: number,
  headers: OutgoingHttpHeaders,
  body: string | Buffer | null,
): void {
  headers['x-request-id'] = reqId;
  if (body !== null) headers['content-length'] = String(Buffer.byteLength(body));
  outgoing.writeHead(status, headers);
  outgoing.end(body ?? undefined);
}

/** Anything else Hono may hand back (HEAD, bearer-auth's 401, a stream body): read whole, then written. */
async function sendReal(outgoing: ServerResponse, reqId: string, res: Response): Promise<number> {
  const body = res.body ? Buffer.from(await res.arrayBuffer()) : null;
  outgoing.setHeaders(res.headers);
  send(outgoing, reqId, res.status, {}, body);
  return res.status;
}

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
    const start = now();
    const given = incoming.headers['x-request-id'];
    const reqId = typeof given === 'string' && SANE_ID.test(given) ? given : randomUUID();
    const method = incoming.method ?? 'GET';
    const url = requestUrl(incoming.headers.host, incoming.url);
    // No closure per request beyond these three (the writing is in module functions): one more, and an
    // async one, measured about 0.3 µs a request each.
    // Request id, method, path, status, duration; `error` for a 5xx, `info` otherwise.
    const done = (status: number) => {
      const level = status >= 500 ? 'error' : 'info';
      // With request lines off (LOG_LEVEL=warn) not even the object is built.
      if (!logger.isLevelEnabled(level)) return;
      const path = url === undefined ? (incoming.url ?? '') : pathOf(url);
      const durationMs = Math.round((now() - start) * 1000) / 1000;
      if (level === 'error') logger.error({ reqId, method, path, status, durationMs }, 'request failed');
      else logger.info({ reqId, method, path, status, durationMs }, 'request');
    };
    const fail = (err: unknown) => {
      onError(err, reqId);
      if (outgoing.headersSent) outgoing.destroy();
      else send(outgoing, reqId, 500, { ...JSON_TYPE }, INTERNAL);
      done(500);
    };
    const write = (res: Response) => {
      if (!(res instanceof LightResponse)) return sendReal(outgoing, reqId, res).then(done, fail);
      send(outgoing, reqId, res.status, res.headers.record, res.text_);
      done(res.status);
    };

    if (url === undefined) {
      send(outgoing, reqId, 400, { ...JSON_TYPE, connection: 'close' }, BAD_REQUEST);
      return done(400);
    }
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
