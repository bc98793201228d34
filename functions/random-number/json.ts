import { lightResponse } from './light-response.ts';

/** A JSON answer as a light response (see createApp for why not `c.json`). */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return lightResponse(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}
