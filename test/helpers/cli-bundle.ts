import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { type BuildOptions, build, version } from 'esbuild';

/**
 * The EC2 CLIs (scripts/<name>.ts), pre-compiled for the tests. Users run them with `tsx` (npm run
 * <name>), which transpiles and resolves the AWS SDK's hundreds of modules on every start: about 2 s of
 * CPU per run, and the tests make dozens of runs. The same sources bundled once start in a fraction of
 * that. The bundles are rebuilt whenever any file they were built from changes (a hash over the
 * contents of every input esbuild reported), so a test never runs stale code. Cached under .tap/ so
 * that several test files, run in parallel, share one build.
 */
export const CLIS = [
  'provision-ec2',
  'teardown-ec2',
  'ec2-results',
  'agent-command',
  'iam-bootstrap',
] as const;
export type CliName = (typeof CLIS)[number];

const ROOT = resolve(import.meta.dirname, '../..');
const CACHE = join(ROOT, '.tap', 'cli-bundles');
const STAMP = join(CACHE, 'latest.json');

// As scripts/build.ts builds the shipped bundles, so that the CLIs load their dependencies the same way.
const OPTIONS: BuildOptions = {
  entryPoints: Object.fromEntries(CLIS.map((name) => [name, join(ROOT, 'scripts', `${name}.ts`)])),
  bundle: true,
  platform: 'node',
  mainFields: ['module', 'main'],
  target: 'node20',
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  external: ['pino-pretty'],
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: 'warning',
};

interface Stamp {
  key: string;
  inputs: string[];
}

/** What a build depends on: esbuild's version, these options, this file, and every input's bytes. */
function keyOf(inputs: string[]): string | undefined {
  const hash = createHash('sha256')
    .update(version)
    .update(JSON.stringify(OPTIONS))
    .update(readFileSync(import.meta.filename));
  for (const input of inputs) {
    const path = join(ROOT, input);
    if (!existsSync(path)) return undefined;
    hash.update(input).update('\0').update(readFileSync(path));
  }
  return hash.digest('hex').slice(0, 16);
}

function cached(): string | undefined {
  try {
    const stamp = JSON.parse(readFileSync(STAMP, 'utf8')) as Stamp;
    const dir = join(CACHE, stamp.key);
    return keyOf(stamp.inputs) === stamp.key && existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

let built: Promise<string> | undefined;

async function buildAll(): Promise<string> {
  const hit = cached();
  if (hit) return hit;
  const tmp = join(CACHE, `tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  const result = await build({ ...OPTIONS, outdir: tmp, absWorkingDir: ROOT, metafile: true });
  const inputs = Object.keys(result.metafile?.inputs ?? {}).sort();
  const key = keyOf(inputs) as string;
  const dir = join(CACHE, key);
  // Another test file may have built the same thing meanwhile: theirs is as good as ours.
  if (existsSync(dir)) rmSync(tmp, { recursive: true, force: true });
  else renameSync(tmp, dir);
  // Builds from older sources (12 MB each): gone once no run started in the last ten minutes can use them.
  // Another test file's build may come and go meanwhile (its tmp- folder renamed): then there is no stat.
  for (const entry of readdirSync(CACHE)) {
    const path = join(CACHE, entry);
    const mtimeMs = statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
    if (entry !== key && entry !== 'latest.json' && mtimeMs < Date.now() - 600_000) {
      rmSync(path, { recursive: true, force: true });
    }
  }
  const stampTmp = `${STAMP}.${process.pid}`;
  writeFileSync(stampTmp, JSON.stringify({ key, inputs } satisfies Stamp));
  renameSync(stampTmp, STAMP);
  return dir;
}

/** The path of `node`-runnable bundle of scripts/<name>.ts, current with the sources. */
export async function cliBundle(name: CliName): Promise<string> {
  built ??= buildAll();
  return join(await built, `${name}.mjs`);
}
