/**
 * A Response for the common case (a string or no body, plain headers) that costs a few object fields
 * instead of Node's fetch implementation (undici). Touching the global Response or Headers loads undici,
 * 10 ms or more of start-up (on Node 22 even reading the global's property descriptor or redefining it
 * does), and an undici Response costs microseconds per request. The app builds its answers with
 * `lightResponse()`; Hono reads only `status` and `headers` of them (for HEAD it makes a real Response
 * from one: that reads the headers through their iterator), and node-listener.ts writes them directly.
 * Responses Hono makes itself (HEAD, bearer-auth's 401) are real ones: rare paths.
 */

/** Case-insensitive header map over a plain object with lower-case keys: what Hono and tests call. */
export class LightHeaders {
  /** Lower-case name → value; what the listener hands to writeHead. */
  readonly record: Record<string, string>;

  constructor(record: Record<string, string>) {
    this.record = record;
  }
  get(name: string): string | null {
    return this.record[name.toLowerCase()] ?? null;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return Object.entries(this.record)[Symbol.iterator]();
  }
}

type Init = { status?: number; headers?: Record<string, string> | LightHeaders };

export class LightResponse {
  readonly status: number;
  /** The body as given: a string or null. Read by the listener, which writes it as is. */
  readonly text_: string | null;
  readonly headers: LightHeaders;

  /** `init` may be another LightResponse, as clone() passes (and Hono, to a real Response, for HEAD). */
  constructor(body: string | null = null, init: Init = {}) {
    const given = init.headers instanceof LightHeaders ? init.headers.record : (init.headers ?? {});
    const record: Record<string, string> = {};
    for (const key in given) record[key.toLowerCase()] = String(given[key]);
    if (body !== null) record['content-type'] ??= 'text/plain;charset=UTF-8';
    this.status = init.status ?? 200;
    this.text_ = body;
    this.headers = new LightHeaders(record);
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
  /** Reading the body as a stream is what the real Response is for: made only then. */
  get body(): ReadableStream | null {
    return this.text_ === null ? null : new Response(this.text_).body;
  }
  text(): Promise<string> {
    return Promise.resolve(this.text_ ?? '');
  }
  json(): Promise<unknown> {
    return this.text().then(JSON.parse);
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    return Promise.resolve(new TextEncoder().encode(this.text_ ?? '').buffer as ArrayBuffer);
  }
  clone(): LightResponse {
    return new LightResponse(this.text_, this);
  }
}

/** A LightResponse typed as the Response that Hono and the tests expect of a handler. */
export function lightResponse(body: string | null, init: Init = {}): Response {
  return new LightResponse(body, init) as unknown as Response;
}
