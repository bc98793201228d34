import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { NODE22, startService } from './helpers/service.ts';

// Production runs Node.js 22 (the image's base, nodejs22 on Amazon Linux 2023); this machine may run 20.
const available = NODE22 !== undefined && existsSync(NODE22);

t.test(
  'the service bundle serves on Node.js 22',
  { skip: available ? false : 'no Node 22 binary: `make node22` fetches it on Linux x86_64' },
  async (t) => {
    const node = NODE22 as string;
    t.match(execFileSync(node, ['--version'], { encoding: 'utf8' }), /^v22\./, 'the binary is Node.js 22');
    const service = await startService(t, {}, undefined, node);
    const res = await fetch(`${service.url}/`, { headers: { Accept: 'application/json' } });
    t.equal(res.status, 200, 'GET / → 200');
    t.match(await res.json(), { number: Number, coldStart: true }, 'JSON answer with a number');
    service.kill('SIGTERM');
    t.equal((await service.exited).code, 0, 'SIGTERM → exit 0');
  },
);
