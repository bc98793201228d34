import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { LightResponse } from './light-response.ts';
import { type RequestLine, requestId } from './request-log.ts';

/** What the handler gets besides the request (Hono: `c.env`). */
export interface RequestBindings {
  requestId: string;
}

/** What a Hono app's `fetch` is given and returns, as far as this listener is concerned. */
export type FetchHandler = (request: Request, env: RequestBindings) => Response | Promise<Response>;

export interface ListenerOptions {
  /** Told of every request once its response is written (request-log.ts). */
  log: (line: RequestLine) => void;
  /** Told of a failure after the handler (which turns its own errors into 500 answers). */
  onError: (err: unknown, reqId: string) => void;
  now?: () => number;
}

/** Request headers as the fetch API reads them, straight from Node's already-parsed object. */
class IncomingHeaders {
  readonly #headers: IncomingMessage['headers'];
  constructor(headers: IncomingMessage['headers']) {
    this.#headers = headers;
  }
  get(name: string): string | null {
    const value = this.#headers[name.toLowerCase()];
    if (value === undefined) return null;
    return typeof value === 'string' ? value : value.join(', ');
  }
  has(name: string): boolean {
    return this.#headers[name.toLowerCase()] !== undefined;
  }
  forEach(callback: (value: string, key: string) => void): void {
    for (const key of Object.keys(this.#headers).sort()) callback(this.get(key) as string, key);
  }
}

/**
 * The part of a fetch Request this service's routes read (method, url, headers): they carry no body,
 * so none is offered. Costs two fields per request instead of an undici Request.
 */
class IncomingRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHeaders;
  constructor(method: string, url: string, headers: IncomingMessage['headers']) {
    this.method = method;
    this.url = url;
    this.headers = new IncomingHeaders(headers);
  }
}

// A Host that is a plain name or address with an optional port 0-65535; anything else goes through URL
// (twice as slow a request: keep ports like 8080 and 31416 on this path).
const PLAIN_HOST =
  /^[a-z0-9._-]+(?::(?:\d{1,4}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5]))?$/i;
// An origin-form target needing no normalisation (no dot segments, backslashes or odd characters).
const PLAIN_TARGET = /^\/[!#$&-;=?-[\]_a-z~]*$/i;
const DOT_SEGMENT = /\/\.\.?(?:[/?#]|$)/;

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

function writeLight(res: LightResponse, outgoing: ServerResponse, reqId: string): void {
  const headers = res.headers.record;
  const body = res.text_;
  headers['x-request-id'] = reqId;
  if (body !== null) headers['content-length'] = String(Buffer.byteLength(body));
  outgoing.writeHead(res.status, headers);
  outgoing.end(body ?? undefined);
}

/** Anything else Hono may hand back (a real Response, say with a stream body): read it whole, then write. */
async function writeReal(res: Response, outgoing: ServerResponse, reqId: string): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  res.headers.forEach((value, key) => {
    headers[key] = value;
  });
  const cookies = res.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  const body = res.body ? Buffer.from(await res.arrayBuffer()) : undefined;
  headers['x-request-id'] = reqId;
  if (body) headers['content-length'] = String(body.length);
  outgoing.writeHead(res.status, headers);
  outgoing.end(body);
}

const BAD_REQUEST = JSON.stringify({
  error: 'bad_request',
  message: 'the Host header or request target is invalid',
});
const INTERNAL = JSON.stringify({ error: 'internal', message: 'internal error' });

/** The path of an absolute URL this listener built (`http://authority/path?query`), query left out. */
function pathOf(url: string): string {
  const from = url.indexOf('/', 7);
  const query = url.indexOf('?', from);
  return url.slice(from, query === -1 ? undefined : query);
}

/**
 * A node:http request listener that runs a fetch handler (Hono's `app.fetch`): a lean stand-in for
 * @hono/node-server, which loads undici and node:http2 at import (most of the service's start-up) and
 * allocates more per request than these routes need. It also does what every request needs, without
 * a Hono middleware (which would make every request asynchronous): the request id, echoed as
 * X-Request-Id and handed to the app as `c.env.requestId`, and the log line. A handler that answers
 * synchronously is written synchronously.
 */
export function createListener(
  fetch: FetchHandler,
  { log, onError, now = performance.now.bind(performance) }: ListenerOptions,
): RequestListener {
  return (incoming, outgoing) => {
    const start = now();
    const reqId = requestId(incoming.headers['x-request-id']);
    const method = incoming.method ?? 'GET';
    const url = requestUrl(incoming.headers.host, incoming.url);
    const done = (status: number) =>
      log({ reqId, method, path: url === undefined ? (incoming.url ?? '') : pathOf(url), status, start });
    const fail = (err: unknown) => {
      onError(err, reqId);
      if (outgoing.headersSent) outgoing.destroy();
      else {
        outgoing.writeHead(500, { 'content-type': 'application/json', 'x-request-id': reqId });
        outgoing.end(INTERNAL);
      }
      done(500);
    };
    const write = (res: Response) => {
      if (LightResponse.isLight(res)) {
        writeLight(res, outgoing, reqId);
        done(res.status);
      } else {
        writeReal(res, outgoing, reqId).then(() => done(res.status), fail);
      }
    };

    if (url === undefined) {
      outgoing.writeHead(400, {
        'content-type': 'application/json',
        'x-request-id': reqId,
        connection: 'close',
      });
      outgoing.end(BAD_REQUEST);
      done(400);
      return;
    }
    let res: Response | Promise<Response>;
    try {
      res = fetch(new IncomingRequest(method, url, incoming.headers) as unknown as Request, {
        requestId: reqId,
      });
    } catch (err) {
      fail(err);
      return;
    }
    if (res instanceof Promise) res.then(write, fail);
    else write(res);
  };
}
