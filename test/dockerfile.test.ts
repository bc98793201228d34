import { execFile } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, posix, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { childPids, json, startProcess } from './helpers/process.ts';
import { NODE22 } from './helpers/service.ts';

// No Docker engine on the development machines: these check what the image is made of, and replay
// its two stages as far as they can run here (the base images cannot be pulled).
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
  t.match(
    build[0],
    /^FROM --platform=\$BUILDPLATFORM node:22[-\w.]* AS build$/i,
    "build stage on Node 22, on the builder's platform (the bundle is plain JavaScript: no emulation)",
  );
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

/** A temporary folder, removed when this file's tests end. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let built: Promise<string> | undefined;
/**
 * The build stage replayed (once) in a folder holding only what its COPY lines bring from the context,
 * with this checkout's node_modules in place of its `npm ci` (same lock file, no network here). The
 * folder stands for the stage's WORKDIR.
 */
function replayBuild(): Promise<string> {
  built ??= (async () => {
    const dir = tempDir('rn-build-');
    const build = stages[0] ?? [];
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
    return dir;
  })();
  return built;
}

t.test('the build stage builds from what it copies, and makes what the runtime stage takes', async (t) => {
  const dir = await replayBuild();
  const runtime = stages.at(-1) ?? [];
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

// What a base image's config brings that the Dockerfile does not say, from GoogleContainerTools/distroless:
// nodejs images set ENTRYPOINT ["/nodejs/bin/node"] (nodejs/BUILD), so their CMD holds node's
// arguments only; every image sets PATH and SSL_CERT_FILE (base/base.bzl).
const BASES = [
  {
    image: /^gcr\.io\/distroless\/nodejs\d+-/,
    entrypoint: ['/nodejs/bin/node'],
    env: {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      SSL_CERT_FILE: '/etc/ssl/certs/ca-certificates.crt',
    },
  },
];

/** The one child of process `pid`, or undefined once there is none. */
const childOf = (pid: number): number | undefined => childPids(pid)[0];

/** An ENTRYPOINT or CMD in exec form; the shell form would need /bin/sh, which distroless has not. */
function execForm(line: string): string[] {
  const form = line.replace(/^\w+\s+/, '');
  if (!form.startsWith('['))
    throw new Error(`${line}: shell form needs /bin/sh (distroless has none): use ["..."]`);
  return JSON.parse(form) as string[];
}

t.test(
  'the runtime stage replayed without Docker: WORKDIR, COPY, ENV, USER and the entrypoint serve',
  async (t) => {
    // Replayed: the stage's instructions after FROM, in a folder standing for the image's root file
    // system, then the program started as the container runtime starts it. Not replayed: the base image
    // itself (it cannot be pulled here): Node 22 from NODE22 stands in for its /nodejs/bin/node, and the
    // host's files for its own. PORT and HOST are overridden (0 on 127.0.0.1): nothing beyond loopback.
    const builtDir = await replayBuild();
    const [build = [], runtime = []] = [stages[0], stages.at(-1)];
    const buildName = /\sAS\s+(\S+)$/i.exec(build[0] ?? '')?.[1];
    const buildWorkdir = build.find((l) => /^WORKDIR /i.test(l))?.split(/\s+/)[1] ?? '/';
    const image = (runtime[0] ?? '').split(/\s+/)[1] ?? '';
    const base = BASES.find((b) => b.image.test(image));
    if (!base)
      throw new Error(`no known config for base image ${image}: add its ENTRYPOINT and ENV to BASES`);

    const fsRoot = tempDir('rn-image-');
    chmodSync(fsRoot, 0o755);
    let workdir = fsRoot;
    let entrypoint = base.entrypoint;
    let cmd: string[] = [];
    let user = '0';
    const env: Record<string, string> = { ...base.env };
    for (const line of runtime.slice(1)) {
      const [keyword = '', ...args] = line.split(/\s+/);
      switch (keyword.toUpperCase()) {
        case 'WORKDIR':
          workdir = join(posix.isAbsolute(args[0] ?? '') ? fsRoot : workdir, args[0] ?? '');
          mkdirSync(workdir, { recursive: true });
          break;
        case 'COPY': {
          const from = args[0]?.startsWith('--from=') ? args.shift()?.slice('--from='.length) : undefined;
          if (args.some((a) => a.startsWith('--')) || (from !== undefined && from !== buildName))
            throw new Error(`${line}: this COPY form is not replayed here`);
          const dest = args.pop() as string;
          const target = join(posix.isAbsolute(dest) ? fsRoot : workdir, dest);
          for (const source of args) {
            const path = from ? join(builtDir, posix.relative(buildWorkdir, source)) : resolve(root, source);
            cpSync(path, dest.endsWith('/') ? join(target, basename(source)) : target, { recursive: true });
          }
          break;
        }
        case 'ENV':
          for (const pair of args) {
            const [, name, value] = /^(\w+)=(.*)$/.exec(pair) ?? [];
            if (name === undefined || value === undefined)
              throw new Error(`${line}: only ENV name=value is replayed`);
            env[name] = value;
          }
          break;
        case 'USER':
          user = args[0] ?? '';
          // By name it would need the base's /etc/passwd, which is not here.
          if (!/^\d+(:\d+)?$/.test(user)) throw new Error(`${line}: only a numeric USER is replayed`);
          break;
        case 'ENTRYPOINT':
          entrypoint = execForm(line);
          break;
        case 'CMD':
          cmd = execForm(line);
          break;
        case 'EXPOSE': // metadata: the port comes from PORT
          break;
        default:
          throw new Error(`${line}: not replayed here; extend the replay before adding it`);
      }
    }

    t.same(entrypoint, base.entrypoint, `the base's ENTRYPOINT (${base.entrypoint.join(' ')}) is kept`);
    t.notMatch(cmd[0] ?? '', /(^|\/)node$/, 'CMD does not name node again: the entrypoint already is node');
    const [program, ...args] = [...entrypoint, ...cmd];
    if (program !== base.entrypoint[0])
      throw new Error(`the image would start ${program}: only node is replayed`);
    // The environment is the image's alone (env -i): not this machine's, nor tap's NODE_OPTIONS loader.
    const environment = Object.entries({ ...env, PORT: '0', HOST: '127.0.0.1' }).map(([k, v]) => `${k}=${v}`);
    // In a container the entrypoint runs as USER and as PID 1 of its own PID namespace, where a signal
    // with no handler is ignored: as root, unshare and setpriv give both.
    const [uid, gid = uid] = user.split(':');
    const asRoot = process.getuid?.() === 0;
    const container = [
      ...['unshare', '--pid', '--fork', '--kill-child', '--'],
      ...['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--'],
    ];
    if (!asRoot) t.comment(`not root: run as this user, not as USER ${user}, and not as PID 1`);
    // The image's node is 22: the one make test fetches stands in for it.
    const node = NODE22;
    if (!node) throw new Error('NODE22 is not set: make test fetches Node.js 22 and sets it');
    const proc = startProcess(t, 'env', ['-i', ...environment, ...(asRoot ? container : []), node, ...args], {
      cwd: workdir,
    });
    // Before startProcess's own teardown (tap runs them last first): unshare's --kill-child does not
    // reach the program, because setpriv's change of uid clears the parent-death signal. Killing the
    // namespace's PID 1 ends all in it.
    t.teardown(() => {
      const program = asRoot ? childOf(proc.child.pid as number) : undefined;
      if (program) process.kill(program, 'SIGKILL');
    });
    const listening = json(await proc.waitForLine((l) => json(l).msg === 'listening'));
    t.equal(listening.address, '127.0.0.1', `${args.join(' ')} in WORKDIR logs 'listening' on HOST`);
    const res = await fetch(`http://127.0.0.1:${listening.port}/`);
    t.equal(res.status, 200, 'GET / answers 200');
    t.match(await res.text(), /^(\d|[1-9]\d|100)\n$/, 'with a number from 0 to 100');

    // unshare's one child is the program (setpriv execs it).
    const pid = (asRoot ? childOf(proc.child.pid as number) : proc.child.pid) as number;
    if (asRoot) {
      t.equal(listening.pid, 1, 'the program is PID 1 in its PID namespace');
      const ids = readFileSync(`/proc/${pid}/status`, 'utf8');
      t.match(ids, new RegExp(`^Uid:\\t${uid}\\t`, 'm'), `it runs as USER's uid ${uid}`);
      t.match(ids, new RegExp(`^Gid:\\t${gid}\\t`, 'm'), `and gid ${gid}`);
    }
    // What `docker stop` and the kubelet send to PID 1; without a handler it would be ignored. The
    // service drains within SHUTDOWN_TIMEOUT_MS (10 s by default; nothing is in flight here).
    process.kill(pid, 'SIGTERM');
    const stopped = await Promise.race([
      proc.exited,
      sleep(15_000, 'still running 15 s later', { ref: false }),
    ]);
    t.same(stopped, { code: 0, signal: null }, 'SIGTERM stops it cleanly');
    t.same(proc.stderr, [], 'nothing on stderr all along');
  },
);

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
