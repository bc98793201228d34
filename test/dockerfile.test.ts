import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import t from 'tap';

// No Docker engine on the development machines: these check what the image is made of. That the
// bundle it copies runs alone is proven in service-process.test.ts ("alone in an empty folder").
const root = resolve(import.meta.dirname, '..');
const lines = readFileSync(resolve(root, 'Dockerfile'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages: string[][] = [];
for (const line of lines) {
  if (/^FROM /i.test(line)) stages.push([]);
  stages.at(-1)?.push(line);
}

t.test('multi-stage: the build stage is Node 22 and runs npm ci and the build', async (t) => {
  t.ok(stages.length >= 2, 'at least two stages');
  const build = stages[0] ?? [];
  t.match(build[0], /^FROM node:22[-\w.]* AS build$/i, 'build stage on Node 22');
  t.ok(build.includes('RUN npm ci --no-audit --no-fund'), 'dependencies from the lock file (npm ci)');
  t.ok(build.includes('RUN npm run build'), 'builds the bundle');
});

t.test('runtime stage: minimal Node 22, only the bundle, numeric non-root user, port 8080', async (t) => {
  const runtime = stages.at(-1) ?? [];
  t.match(
    runtime[0],
    /^FROM (gcr\.io\/distroless\/nodejs22[-\w.:]*|node:22[-.\w]*alpine[-.\w]*)$/,
    'distroless or alpine Node 22',
  );
  const copies = runtime.filter((l) => /^COPY /i.test(l));
  t.same(
    copies,
    ['COPY --from=build /src/dist/random-number.mjs ./random-number.mjs'],
    'copies the bundle and nothing else',
  );
  const user = runtime.find((l) => /^USER /i.test(l));
  t.match(user, /^USER [1-9]\d*(:[1-9]\d*)?$/, 'a numeric, non-root user');
  t.ok(runtime.includes('EXPOSE 8080'), 'exposes 8080');
  t.match(
    runtime.find((l) => /^CMD /i.test(l)),
    /random-number\.mjs/,
    'runs the bundle',
  );
  t.notOk(
    runtime.some((l) => /^(RUN|VOLUME)/i.test(l)),
    'no RUN or VOLUME: nothing written at build or run time',
  );
});

t.test('.dockerignore keeps local state out of the build context', async (t) => {
  const ignored = readFileSync(resolve(root, '.dockerignore'), 'utf8').split('\n');
  for (const entry of ['node_modules', 'dist', '.cache', '.git'])
    t.ok(ignored.includes(entry), `${entry} is ignored`);
  // make tls-cert's private keys must never reach a build context (or an image layer).
  t.ok(ignored.includes('certs'), 'certs (the TLS keys) is ignored');
});
