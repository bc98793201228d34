import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { binWith, ROOT } from './helpers/kustomize.ts';

// Every shell script in the repository, found rather than listed, so a new one is checked too:
// files named *.sh, and any file whose first line is a sh/bash shebang (e.g. .ci/run).
// .cache holds downloads and the test host's Debian root file system: not ours to lint.
const SKIP = new Set(['node_modules', '.git', 'dist', 'data', '.tap', '.cache']);

function shellScripts(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      found.push(...shellScripts(path));
    } else if (entry.isFile()) {
      const head = entry.name.endsWith('.sh') ? '' : readFileSync(path, 'utf8').slice(0, 64);
      if (entry.name.endsWith('.sh') || /^#!\s*\/(usr\/)?bin\/(env\s+)?(ba)?sh\b/.test(head))
        found.push(path);
    }
  }
  return found;
}

const scripts = shellScripts(ROOT).map((p) => relative(ROOT, p));

t.test('shell scripts exist where expected', async (t) => {
  for (const expected of ['scripts/deploy-knative.sh', 'scripts/setup-minikube.sh', '.ci/run']) {
    t.ok(scripts.includes(expected), `${expected} is found by the search`);
  }
});

t.test('shellcheck finds nothing in any shell script', async (t) => {
  for (const script of scripts) {
    const r = spawnSync('shellcheck', ['--external-sources', script], { cwd: ROOT, encoding: 'utf8' });
    if (r.error) throw new Error(`shellcheck could not run (make prereqs installs it): ${r.error.message}`);
    t.equal(r.status, 0, `shellcheck ${script}${r.stdout ? `\n${r.stdout}` : ''}`);
  }
});

t.test('the Knative and TLS scripts are strict bash and executable', async (t) => {
  for (const name of ['deploy-knative', 'setup-minikube', 'tls-cert', 'expose-minikube']) {
    const script = `scripts/${name}.sh`;
    const text = readFileSync(join(ROOT, script), 'utf8');
    t.match(text, /^#!\/usr\/bin\/env bash\n/, `${script}: bash shebang`);
    t.match(text, /^set -euo pipefail$/m, `${script}: set -euo pipefail`);
    t.ok(statSync(join(ROOT, script)).mode & 0o100, `${script}: executable (make runs it directly)`);
  }
});

t.test('setup-minikube pins its Knative versions and names what is missing', async (t) => {
  const text = readFileSync(join(ROOT, 'scripts/setup-minikube.sh'), 'utf8');
  t.match(text, /KNATIVE_VERSION="\$\{KNATIVE_VERSION:-\d+\.\d+\.\d+\}"/, 'Knative Serving version pinned');
  t.match(text, /KOURIER_VERSION="\$\{KOURIER_VERSION:-\d+\.\d+\.\d+\}"/, 'Kourier version pinned');
  const r = spawnSync(join(ROOT, 'scripts/setup-minikube.sh'), [], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: binWith(t, ['bash']), HOME: process.env.HOME },
  });
  t.equal(r.status, 1, 'fails without minikube and kubectl');
  t.match(r.stderr, /setup-minikube: missing: minikube .* kubectl/, 'and names both');
});
