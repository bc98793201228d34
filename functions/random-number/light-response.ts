/**
 * A Response for the common case (a string or no body, plain headers) that costs a few object fields
 * instead of Node's fetch implementation (undici). Touching the global Response or Headers loads undici,
 * 10 ms or more of start-up (on Node 22 even reading the global's property descriptor or redefining it
 * does), and an undici Response costs microseconds per request. The app builds its answers with
 * `lightResponse()`; Hono reads only `status` and `headers` of them, and node-listener.ts writes them
 * directly. Anything else (a stream body, reading `.body`) falls through to the real Response, looked
 * up only then. Responses Hono makes itself (HEAD, bearer-auth's 401) are real ones: rare paths.
 */

type Init = { status?: number; statusText?: string; headers?: unknown } | undefined;

/** Fetch's Response as Node ships it, looked up on first need: the lookup loads undici. */
let realResponse: typeof Response | undefined;
const Real = (): typeof Response => {
  realResponse ??= globalThis.Response;
  return realResponse;
};

/** Case-insensitive header map over a plain object with lower-case keys: what Hono and tests call. */
export class LightHeaders {
  /** Lower-case name → value; what the listener hands to writeHead. */
  readonly record: Record<string, string>;

  constructor(record: Record<string, string> = {}) {
    this.record = record;
  }

  get(name: string): string | null {
    return this.record[name.toLowerCase()] ?? null;
  }
  has(name: string): boolean {
    return name.toLowerCase() in this.record;
  }
  set(name: string, value: string): void {
    this.record[name.toLowerCase()] = String(value);
  }
  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const old = this.record[key];
    this.record[key] = old === undefined ? String(value) : `${old}, ${value}`;
  }
  delete(name: string): void {
    delete this.record[name.toLowerCase()];
  }
  getSetCookie(): string[] {
    const cookie = this.record['set-cookie'];
    return cookie === undefined ? [] : [cookie];
  }
  forEach(callback: (value: string, key: string, headers: LightHeaders) => void): void {
    for (const [key, value] of this.entries()) callback(value, key, this);
  }
  *entries(): IterableIterator<[string, string]> {
    yield* Object.entries(this.record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }
  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/** Lower-cased copy of plain headers, a [name, value][] list, or anything with forEach (Headers). */
function toRecord(headers: unknown): Record<string, string> | undefined {
  const record: Record<string, string> = {};
  if (headers === undefined || headers === null) return record;
  if (headers instanceof LightHeaders) return { ...headers.record };
  if (Array.isArray(headers)) {
    for (const [key, value] of headers as [string, string][]) record[key.toLowerCase()] = String(value);
    return record;
  }
  if (typeof (headers as { forEach?: unknown }).forEach === 'function') {
    // A real Headers (Hono makes one when a handler sets several headers through the Context).
    // Several Set-Cookie values cannot share one field: leave those to the real Response.
    if ((headers as Headers).getSetCookie?.().length > 1) return undefined;
    (headers as Headers).forEach((value, key) => {
      record[key] = value;
    });
    return record;
  }
  for (const key in headers as Record<string, unknown>) {
    record[key.toLowerCase()] = String((headers as Record<string, unknown>)[key]);
  }
  return record;
}

export class LightResponse {
  readonly status!: number;
  readonly statusText!: string;
  /** The body as given: a string or null. Read by the listener, which writes it as is. */
  readonly text_!: string | null;
  readonly headers!: LightHeaders;
  readonly type = 'default';
  readonly redirected = false;
  readonly url = '';
  #real: Response | undefined;

  /** Anything a real Response accepts; only a string or null body with simple headers stays light. */
  constructor(body?: unknown, init?: Init | LightResponse) {
    const light = init instanceof LightResponse;
    const record = light ? { ...init.headers.record } : toRecord(init?.headers);
    if ((body !== null && body !== undefined && typeof body !== 'string') || !record) {
      // Returning an object from a constructor makes `new` yield it: the real thing, fully featured.
      const RealResponse = Real();
      // biome-ignore lint/correctness/noConstructorReturn: the documented fall-back to the real Response
      return new RealResponse(
        body as ConstructorParameters<typeof Response>[0],
        init as ResponseInit,
      ) as unknown as LightResponse;
    }
    this.status = init?.status ?? 200;
    this.statusText = init?.statusText ?? '';
    this.text_ = (body as string | null | undefined) ?? null;
    if (this.text_ !== null && !('content-type' in record))
      record['content-type'] = 'text/plain;charset=UTF-8';
    this.headers = new LightHeaders(record);
  }

  static isLight(value: unknown): value is LightResponse {
    return value instanceof LightResponse;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
  get bodyUsed(): boolean {
    return this.#real?.bodyUsed ?? false;
  }
  get body(): ReadableStream | null {
    return this.#materialize().body;
  }
  text(): Promise<string> {
    return this.#real ? this.#real.text() : Promise.resolve(this.text_ ?? '');
  }
  json(): Promise<unknown> {
    return this.text().then(JSON.parse);
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#materialize().arrayBuffer();
  }
  bytes(): Promise<Uint8Array> {
    return this.arrayBuffer().then((buffer) => new Uint8Array(buffer));
  }
  blob(): Promise<Blob> {
    return this.#materialize().blob();
  }
  formData(): Promise<FormData> {
    return this.#materialize().formData();
  }
  clone(): LightResponse {
    return new LightResponse(this.text_, this);
  }

  #materialize(): Response {
    this.#real ??= new (Real())(this.text_, {
      status: this.status,
      statusText: this.statusText,
      headers: this.headers.record,
    });
    return this.#real;
  }
}

/**
 * A Response for the app's handlers: a LightResponse when the body is a string or null, else a real
 * one. Typed as Response, which is all Hono and the tests need of it.
 */
export function lightResponse(
  body: string | null,
  init: { status?: number; headers?: Record<string, string> } = {},
): Response {
  return new LightResponse(body, init) as unknown as Response;
}
