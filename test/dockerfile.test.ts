import { execFile } from 'node:child_process';
import { cpSync, existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
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
  t.ok(build.includes('RUN node_modules/.bin/tsx scripts/build.ts'), 'builds the bundle');
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
    [
      'COPY --from=build /src/dist/random-number.mjs ./random-number.mjs',
      'COPY LICENSE ./LICENSE',
      'COPY --from=build /src/dist/random-number.licenses.txt ./THIRD-PARTY-LICENSES.txt',
    ],
    "copies the bundle, the project's licence and the bundled packages' licences, nothing else",
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

t.test('the build stage builds from what it copies, and makes what the runtime stage takes', async (t) => {
  // The build stage replayed in a folder holding only what its COPY lines bring from the context, with
  // this checkout's node_modules in place of its `npm ci` (same lock file, no network here).
  const dir = t.testdir();
  const [build = [], runtime = []] = [stages[0], stages.at(-1)];
  for (const line of build.filter((l) => /^COPY /i.test(l))) {
    const [, ...args] = line.split(/\s+/);
    const dest = args.pop() as string;
    for (const source of args) {
      const into = dest.endsWith('/') ? join(dir, dest, source) : join(dir, dest);
      cpSync(resolve(root, source), into, { recursive: true });
    }
  }
  symlinkSync(resolve(root, 'node_modules'), join(dir, 'node_modules'));
  // Its RUN lines after `npm ci`, as the image build runs them.
  for (const line of build.filter((l) => /^RUN /i.test(l) && !/npm ci/.test(l))) {
    await promisify(execFile)('sh', ['-c', line.replace(/^RUN\s+/i, '')], { cwd: dir, timeout: 120_000 });
  }
  for (const line of runtime.filter((l) => /^COPY /i.test(l))) {
    const [, ...args] = line.split(/\s+/);
    const fromBuild = args[0] === '--from=build';
    const source = fromBuild
      ? join(dir, (args[1] as string).replace(/^\/src\//, ''))
      : resolve(root, args[0] as string);
    t.ok(existsSync(source), `${line}: ${fromBuild ? 'the build stage made it' : 'in the build context'}`);
  }
  const notices = readFileSync(join(dir, 'dist/random-number.licenses.txt'), 'utf8');
  for (const name of ['hono', 'pino', 'zod']) {
    const { version, license } = JSON.parse(
      readFileSync(resolve(root, 'node_modules', name, 'package.json'), 'utf8'),
    );
    const text = readFileSync(resolve(root, 'node_modules', name, 'LICENSE'), 'utf8').trim();
    t.ok(
      notices.includes(`${name} ${version} (${license})\n\n${text}`),
      `${name}'s licence, as it ships, is in the image`,
    );
  }
  t.notMatch(notices, /^(tap|esbuild|typescript) /m, 'no licence of a package the bundle holds no code of');
});

t.test('the licences that ship', async (t) => {
  const license = readFileSync(resolve(root, 'LICENSE'), 'utf8');
  const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8'));
  t.equal(pkg.license, 'Apache-2.0', 'package.json names Apache-2.0');
  t.match(license, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/, 'LICENSE is its text');
  t.match(license, /END OF TERMS AND CONDITIONS/, 'in full');
  // The agent reaches EC2 as one file: a notice its code marks as legal travels inside it.
  const agent = readFileSync(resolve(root, 'dist/ec2-agent.mjs'), 'utf8');
  t.match(
    agent,
    /\/\*! Bundled license information:\n\n(.+:\n {2}\(\*! .*\*\)\n\n)*ky\/distribution\/index\.js:\n {2}\(\*! MIT License © Sindre Sorhus \*\)/,
    "ky's notice, kept at the end of the agent bundle",
  );
  // undici (the dispatcher that carries the service's CA): its own licence, not marked legal in its code.
  const { version } = JSON.parse(readFileSync(resolve(root, 'node_modules/undici/package.json'), 'utf8'));
  t.match(
    readFileSync(resolve(root, 'dist/ec2-agent.licenses.txt'), 'utf8'),
    `undici ${version} (MIT)\n\n${readFileSync(resolve(root, 'node_modules/undici/LICENSE'), 'utf8').trim()}`,
    "undici's licence is in the agent bundle's notices",
  );
});
