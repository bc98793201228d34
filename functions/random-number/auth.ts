import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Requires `Authorization: Bearer <token>` (hono/bearer-auth), answering in the service's JSON:
 * no header → 401 with `WWW-Authenticate: Bearer realm="random-number"`; a header that is not a
 * Bearer b64token → 400 (`error="invalid_request"`); a wrong token → 401 (`error="invalid_token"`).
 * The comparison is node:crypto's timingSafeEqual over SHA-256 digests, so constant-time whatever
 * the lengths, with the expected digest made once (hono's default, hono 4.13, hashes both tokens on
 * every request and also compares them as strings, in a time that grows with the longer one).
 */
export function bearerToken(token: string): MiddlewareHandler {
  const expected = digest(token);
  return bearerAuth({
    realm: 'random-number',
    verifyToken: (given) => timingSafeEqual(digest(given), expected),
    noAuthenticationHeader: {
      message: { error: 'unauthorized', message: 'send Authorization: Bearer <token>' },
    },
    invalidAuthenticationHeader: {
      message: { error: 'invalid_request', message: 'the Authorization header must be: Bearer <token>' },
    },
    invalidToken: { message: { error: 'unauthorized', message: 'the bearer token is not valid' } },
  });
}
