import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { json } from './json.ts';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Requires `Authorization: Bearer <token>`. Both sides are hashed first so the comparison is
 * constant-time whatever the lengths; anything else is 401 with `WWW-Authenticate: Bearer`.
 */
export function bearerToken(token: string): MiddlewareHandler {
  const expected = digest(token);
  return async function bearerToken(c, next) {
    const match = /^Bearer +(\S+) *$/i.exec(c.req.header('Authorization') ?? '');
    if (match?.[1] && timingSafeEqual(digest(match[1]), expected)) return next();
    return json(
      401,
      { error: 'unauthorized', message: 'send Authorization: Bearer <token>' },
      { 'WWW-Authenticate': 'Bearer realm="random-number"' },
    );
  };
}
