import t from 'tap';
import { rawRequest } from './helpers/raw.ts';
import { startService } from './helpers/service.ts';

// Each of these is malformed or hostile. The contract: a 4xx or a closed connection, never a 5xx,
// never a hang, never a crash, and the service keeps serving afterwards.
const HOSTILE: Record<string, string> = {
  'not HTTP at all': 'GARBAGE\r\n\r\n',
  'broken request line': 'GET  HTTP/1.1 /\r\nHost: a\r\n\r\n',
  'Content-Length with Transfer-Encoding (smuggling)':
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'two different Content-Length':
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
  'Transfer-Encoding chunked, identity':
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
  'bad chunk size': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n',
  'URL of 20 000 characters': `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
  'header of 20 000 characters': `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
  '3000 headers': `GET / HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: y\r\n`).join('')}\r\n`,
  'unknown method BREW': 'BREW / HTTP/1.1\r\nHost: a\r\n\r\n',
  'WebDAV method PROPFIND': 'PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n',
  CONNECT: 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n',
  'bad percent-encoding in path': 'GET /%zz%E0%A4%A HTTP/1.1\r\nHost: a\r\n\r\n',
  'NUL in path': 'GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n',
  'path traversal': 'GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n',
  'HTTP/9.9': 'GET / HTTP/9.9\r\nHost: a\r\n\r\n',
  'no Host header': 'GET / HTTP/1.1\r\n\r\n',
  'Host with a space': 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n',
  'Host with a broken IPv6 literal': 'GET / HTTP/1.1\r\nHost: [::\r\n\r\n',
  'Host with port out of range': 'GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n',
  'absolute-form URL that does not parse': 'GET http://[::/ HTTP/1.1\r\nHost: a\r\n\r\n',
  'bare LF line endings': 'GET / HTTP/1.1\nHost: a\n\n',
  'unknown Expect': 'GET / HTTP/1.1\r\nHost: a\r\nExpect: weird\r\n\r\n',
};

t.test('hostile requests over raw TCP get a 4xx or a closed connection, never a 5xx or a hang', async (t) => {
  const service = await startService(t);
  for (const [name, payload] of Object.entries(HOSTILE)) {
    const answer = await rawRequest(service.port, payload);
    t.ok(
      answer === 'closed' || (typeof answer === 'number' && answer >= 400 && answer < 500),
      `${name}: ${answer} is a 4xx or a close (not a 5xx, not a hang)`,
    );
  }
  const health = await fetch(`${service.url}/healthz`);
  t.equal(health.status, 200, 'the service still answers afterwards');
  t.equal(service.child.exitCode, null, 'the process is still running');
  const serverErrors = service.stdout.filter((l) => /"level":(50|60)/.test(l));
  t.same(serverErrors, [], 'no error or fatal log lines');
});

t.test('a client stalled halfway through its headers does not block others', async (t) => {
  const service = await startService(t);
  const slow = rawRequest(service.port, 'GET / HTTP/1.1\r\nHost: a\r\n', 300);
  const res = await fetch(`${service.url}/`);
  t.equal(res.status, 200, 'other clients are served while one is stalled');
  t.equal(await slow, 'timeout', 'the stalled client got no response yet, and its connection stays open');
});
