import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { AGENT_BUNDLE, fileLines, LINE, startAgent } from './helpers/agent.ts';
import { json } from './helpers/process.ts';
import { NODE22, startService } from './helpers/service.ts';

// Production runs Node.js 22 (the image's base; nodejs22 on Amazon Linux 2023); this machine may run 20.
// Both bundles run here on the binary `make test` fetches.
const node = NODE22 !== undefined && existsSync(NODE22) ? NODE22 : undefined;
const skip = node ? false : 'no Node 22 binary: `make node22` fetches it on Linux x86_64';

t.test('the binary is Node.js 22', { skip }, async (t) => {
  t.match(execFileSync(node as string, ['--version'], { encoding: 'utf8' }), /^v22\./);
});

t.test('the service bundle serves on Node.js 22', { skip }, async (t) => {
  const service = await startService(t, {}, undefined, node);
  const res = await fetch(`${service.url}/`, { headers: { Accept: 'application/json' } });
  t.equal(res.status, 200, 'GET / → 200');
  t.match(await res.json(), { number: Number, coldStart: true }, 'JSON answer with a number');
  service.kill('SIGTERM');
  t.equal((await service.exited).code, 0, 'SIGTERM → exit 0');
});

t.test('the agent bundle polls, writes and stops cleanly on Node.js 22', { skip }, async (t) => {
  const service = await startService(t);
  const output = join(t.testdir(), 'n.txt');
  const agent = startAgent(
    t,
    { SERVICE_URL: service.url, SCHEDULE: '*/1 * * * * *', OUTPUT_FILE: output },
    AGENT_BUNDLE,
    node,
  );
  t.match(
    json(await agent.waitForLine((l) => json(l).msg === 'started')),
    { node: /^v22\./ },
    'the agent says it runs on Node 22',
  );
  t.match(await agent.waitForPoll(), { outcome: 'ok', number: Number }, 'a number');
  agent.kill('SIGTERM');
  t.equal((await agent.exited).code, 0, 'SIGTERM → exit 0');
  t.same(agent.stderr, [], 'nothing on stderr (no runtime warnings on 22)');
  const lines = await fileLines(output);
  t.ok(lines.length >= 1 && lines.every((l) => LINE.test(l)), 'valid lines');
});
