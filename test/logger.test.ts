import t from 'tap';
import { memoryLogger } from './helpers/logs.ts';

// lib/logger.ts's redaction is the net under "secrets are never logged": the code logs no secret on
// purpose, so nothing else shows that the net holds. Through the real pino logger every process uses.

const SECRET = 'sk-0123456789abcdef0123456789abcdef';

/** The value at a dotted path of a logged line. */
const at = (line: unknown, path: string): unknown =>
  path.split('.').reduce((value, key) => (value as Record<string, unknown> | undefined)?.[key], line);

t.test('a secret under any of the redacted paths is blanked, on every process logger', async (t) => {
  const { logger, lines, text } = memoryLogger();
  const child = logger.child({ module: 'test' });
  const cases: [string, object][] = [
    ['apiToken', { apiToken: SECRET }],
    ['token', { token: SECRET }],
    ['authorization', { authorization: `Bearer ${SECRET}` }],
    ['config.apiToken', { config: { apiToken: SECRET, port: 8080 } }],
    ['headers.authorization', { headers: { authorization: `Bearer ${SECRET}`, accept: '*/*' } }],
    ['req.headers.authorization', { req: { method: 'GET', headers: { authorization: `Bearer ${SECRET}` } } }],
  ];
  for (const [path, fields] of cases) child.warn(fields, path);
  logger.flush();
  t.notMatch(text(), SECRET, 'the secret is in no line');
  const logged = lines();
  t.equal(logged.length, cases.length, 'every line was still written');
  cases.forEach(([path], index) => {
    t.equal(at(logged[index], path), '[redacted]', `${path}: replaced by [redacted]`);
  });
  t.equal(at(logged[3], 'config.port'), 8080, 'what sits beside a secret is kept');
  t.equal(at(logged[4], 'headers.accept'), '*/*', 'other headers are kept');
});
