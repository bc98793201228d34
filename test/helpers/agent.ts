import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { json, type Started, startProcess, type Teardown } from './process.ts';

export const AGENT_BUNDLE = resolve(import.meta.dirname, '../../dist/ec2-agent.mjs');

/** `<ISO-8601 UTC with ms> <0..100>`: the only line the agent ever writes. */
export const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\d|[1-9]\d|100)$/;

/** The numbers file's promise after a fault: every line whole (`LINE`), and the lines in time order. */
export function checkWholeInOrder(
  t: { same(a: unknown, b: unknown, m: string): unknown; ok(a: unknown, m: string): unknown },
  lines: string[],
  whole = 'every line is whole: none torn, none joined',
) {
  t.same(
    lines.filter((line) => !LINE.test(line)),
    [],
    whole,
  );
  const times = lines.map((line) => Date.parse(line.split(' ')[0] as string));
  t.ok(
    times.every((time, i) => i === 0 || time >= (times[i - 1] as number)),
    'the lines are in time order',
  );
}

export interface Agent extends Started {
  /** The `msg: "poll"` lines so far, parsed. */
  polls(): Record<string, unknown>[];
  /** Resolves with the next poll line (after those already seen) matching `test`. */
  waitForPoll(
    test?: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

/** The built agent bundle as a real process; killed when the test ends. */
export function startAgent(
  t: Teardown,
  env: Record<string, string | undefined>,
  bundle = AGENT_BUNDLE,
  node = process.execPath,
): Agent {
  const started = startProcess(t, node, [bundle], { env: { LOG_LEVEL: 'info', ...env } });
  const polls = () => started.stdout.map(json).filter((l) => l.msg === 'poll');
  return Object.assign(started, {
    polls,
    async waitForPoll(test: (line: Record<string, unknown>) => boolean = () => true, timeoutMs = 10_000) {
      const seen = started.stdout.length;
      let index = 0;
      const line = await started.waitForLine((l) => {
        index += 1;
        const parsed = json(l);
        return index > seen && parsed.msg === 'poll' && test(parsed);
      }, timeoutMs);
      return json(line);
    },
  });
}

/** The lines of the numbers file, or [] when it does not exist. */
export async function fileLines(path: string): Promise<string[]> {
  try {
    const text = await readFile(path, 'utf8');
    return text === '' ? [] : text.replace(/\n$/, '').split('\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export interface StubServer {
  url: string;
  port: number;
  /** Requests seen so far: their headers. */
  requests: IncomingMessage['headers'][];
  /** Replaces how the server answers. */
  answer(handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  close(): Promise<void>;
}

/** A small node:http server on 127.0.0.1, port 0, answering however the test says; closed at teardown. */
export async function startStub(
  t: Teardown,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<StubServer> {
  let current = handler;
  const requests: IncomingMessage['headers'][] = [];
  const server = createServer((req, res) => {
    requests.push(req.headers);
    current(req, res);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  };
  t.teardown(close);
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    requests,
    answer: (next) => {
      current = next;
    },
    close,
  };
}
