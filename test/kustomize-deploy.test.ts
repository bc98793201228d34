import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  binWith,
  closedPort,
  DEPLOY_SCRIPT,
  deployScript,
  ksvc,
  kubeconfig,
  kustomize,
  type Manifest,
  parseManifests,
  ROOT,
  runScript,
  validateManifest,
} from './helpers/kustomize.ts';
import { tlsCert } from './helpers/tls.ts';

// `make deploy-knative` without a cluster: what `make -n` shows, and how each missing piece is
// reported. No test here reaches a cluster: kubeconfigs are empty or point at a closed local port.

const IMAGE = 'ghcr.io/acme/random-number:1.4.2';
const container = (svc: Manifest): Manifest => svc.spec.template.spec.containers[0];

function makeN(...args: string[]): string[] {
  const out = execFileSync('make', ['-n', ...args], { cwd: ROOT, encoding: 'utf8' });
  return out.trim().split('\n');
}

/** The `kubectl wait` line: on a timeout it must say why the Service is not Ready, in its namespace. */
function waitsOrExplains(t: Test, lines: string[], namespace: string) {
  const wait = lines.find((l) => l.startsWith('kubectl wait ksvc/random-number ')) ?? '';
  t.match(
    wait,
    new RegExp(`--timeout=\\S+ \\|\\| scripts/deploy-knative\\.sh not-ready ${namespace}$`),
    `a wait that times out runs not-ready ${namespace}`,
  );
}

/** Index of the first line containing `text` at or after `from`, or -1. */
const lineOf = (lines: string[], text: string, from = 0) =>
  lines.findIndex((l, i) => i >= from && l.includes(text));

/** The steps must appear in this order (each a substring of one line). */
function inOrder(lines: string[], steps: string[]): string[] {
  let at = 0;
  const missing: string[] = [];
  for (const step of steps) {
    const i = lineOf(lines, step, at);
    if (i < 0) missing.push(step);
    else at = i + 1;
  }
  return missing;
}

t.test('make -n deploy-knative (minikube) shows the secret, build, apply, wait and URL steps', async (t) => {
  const lines = makeN('deploy-knative');
  t.same(
    inOrder(lines, [
      'scripts/deploy-knative.sh check minikube',
      // Before the build: a deploy that would not start without a token stops before the long step.
      'scripts/deploy-knative.sh secret default',
      'minikube image build -t random-number:dev .',
      // With the namespace: the rollout annotation, read after the Secret and the build.
      "scripts/deploy-knative.sh render minikube '' default | kubectl apply -f -",
      'kubectl wait ksvc/random-number -n default --for=condition=Ready --timeout=',
      'scripts/deploy-knative.sh url minikube default',
    ]),
    [],
    'every minikube step, in order',
  );
  t.equal(lineOf(lines, 'docker'), -1, 'no docker build or push for minikube');
  waitsOrExplains(t, lines, 'default');
});

t.test('make -n deploy-knative OVERLAY=cloud IMAGE=... builds, pushes and applies that image', async (t) => {
  const lines = makeN('deploy-knative', 'OVERLAY=cloud', `IMAGE=${IMAGE}`);
  t.same(
    inOrder(lines, [
      `scripts/deploy-knative.sh check cloud '${IMAGE}'`,
      'scripts/deploy-knative.sh secret random-number',
      `docker build --platform 'linux/amd64' -t '${IMAGE}' .`,
      `docker push '${IMAGE}'`,
      `scripts/deploy-knative.sh render cloud '${IMAGE}' random-number | kubectl apply -f -`,
      'kubectl wait ksvc/random-number -n random-number --for=condition=Ready --timeout=',
      'scripts/deploy-knative.sh url cloud random-number',
    ]),
    [],
    'every cloud step, in order',
  );
  t.equal(lineOf(lines, 'minikube image build'), -1, 'no minikube build for cloud');
  waitsOrExplains(t, lines, 'random-number');
  const arm = makeN('deploy-knative', 'OVERLAY=cloud', `IMAGE=${IMAGE}`, 'PLATFORM=linux/arm64');
  t.not(
    lineOf(arm, `docker build --platform 'linux/arm64' -t '${IMAGE}' .`),
    -1,
    'PLATFORM picks the platform built',
  );
});

t.test('make -n deploy-knative with IMAGE by digest deploys it as pushed: no build, no push', async (t) => {
  const pinned = `ghcr.io/acme/random-number@sha256:${'0123456789abcdef'.repeat(4)}`;
  const lines = makeN('deploy-knative', 'OVERLAY=cloud', `IMAGE=${pinned}`);
  t.same(
    inOrder(lines, [
      `scripts/deploy-knative.sh check cloud '${pinned}'`,
      'scripts/deploy-knative.sh secret random-number',
      `scripts/deploy-knative.sh render cloud '${pinned}' random-number | kubectl apply -f -`,
      'kubectl wait ksvc/random-number -n random-number',
    ]),
    [],
    'check, Secret, apply, wait',
  );
  t.equal(lineOf(lines, 'docker'), -1, 'no docker build or push (Docker refuses to tag a digest)');
  waitsOrExplains(t, lines, 'random-number');
  const r = deployScript(['check', 'cloud', pinned], {
    PATH: binWith(t, ['bash', 'dirname', 'kubectl']),
    KUBECONFIG: kubeconfig(t),
  });
  t.notMatch(r.stderr, /docker is not installed/, 'and check does not ask for docker');
  t.match(
    deployScript(['check', 'cloud', IMAGE], { PATH: binWith(t, ['bash', 'dirname']) }).stderr,
    /docker is not installed: it builds and pushes IMAGE .*or give IMAGE by digest/,
    'by tag it does, naming the digest as the way without docker',
  );
});

t.test('IMAGE with upper case in its repository name is refused before anything runs', async (t) => {
  for (const [image, repo] of [
    ['ghcr.io/Acme/random-number:1.0.0', 'Acme/random-number'],
    [`registry.example.com:5000/team/Random-Number@sha256:${'0'.repeat(64)}`, 'team/Random-Number'],
    ['Acme/random-number:1.0.0', 'Acme/random-number'],
  ]) {
    for (const step of ['check', 'render']) {
      const r = deployScript([step, 'cloud', image as string], { KUBECONFIG: kubeconfig(t) });
      t.equal(r.status, 1, `${step} '${image}': fails`);
      t.match(
        r.stderr,
        `IMAGE '${image}' has upper-case letters in its repository name '${repo}', which Docker refuses`,
        `${step} '${image}': names the repository`,
      );
      t.equal(r.stdout, '', `${step} '${image}': prints no manifests`);
    }
  }
  for (const image of ['Registry.Example.com/acme/random-number:1.0.0', 'ghcr.io/acme/random-number:V1']) {
    const r = deployScript(['render', 'cloud', image]);
    t.equal(
      r.status,
      0,
      `'${image}': upper case in the registry host or the tag is accepted, as Docker does`,
    );
  }
});

t.test('make -n deploy-knative always applies the rendered manifests, never the bare overlay', async (t) => {
  for (const args of [[], ['API_TOKEN=none'], ['OVERLAY=cloud', `IMAGE=${IMAGE}`]]) {
    const lines = makeN('deploy-knative', ...args);
    t.equal(
      lines.filter((l) => / render (minikube|cloud) .* \| kubectl apply -f -/.test(l)).length,
      1,
      `${args.join(' ') || 'minikube'}: one render piped to kubectl apply (the rollout annotation is rendered in)`,
    );
    t.notOk(
      lines.some((l) => l.startsWith('kubectl apply -k')),
      `${args.join(' ') || 'minikube'}: not the bare overlay, which has no rollout annotation`,
    );
  }
});

t.test('the namespaces make uses are the overlays own', async (t) => {
  for (const overlay of ['minikube', 'cloud']) {
    const ns = ksvc(kustomize(`kustomize/overlays/${overlay}`)).metadata.namespace;
    const lines = makeN('deploy-knative', `OVERLAY=${overlay}`, `IMAGE=${IMAGE}`);
    t.not(
      lineOf(lines, `kubectl wait ksvc/random-number -n ${ns} `),
      -1,
      `${overlay}: waits in namespace ${ns}`,
    );
    t.not(lineOf(lines, `secret ${ns}`), -1, `${overlay}: writes the Secret in namespace ${ns}`);
  }
});

t.test('the token given to make never appears in its commands', async (t) => {
  const token = 'tok-3f9c1d2e-never-printed-012345678';
  const out = execFileSync('make', ['-n', 'deploy-knative', `API_TOKEN=${token}`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  t.notMatch(out, token, 'make -n output holds no token');
});

t.test('make -n undeploy-knative removes what deploy created', async (t) => {
  t.same(
    inOrder(makeN('undeploy-knative'), [
      'scripts/deploy-knative.sh cluster minikube',
      'kubectl delete secret random-number-api-token random-number-tls -n default --ignore-not-found',
      'kubectl delete -k kustomize/overlays/minikube --ignore-not-found',
    ]),
    [],
    'minikube: Secrets and Service',
  );
  t.same(
    inOrder(makeN('undeploy-knative', 'OVERLAY=cloud'), [
      'scripts/deploy-knative.sh cluster cloud',
      'kubectl delete domainmappings.serving.knative.dev -n random-number',
      'kubectl delete clusterdomainclaims.networking.internal.knative.dev',
      'kubectl delete secret random-number-api-token random-number-tls -n random-number',
      'kubectl delete -k kustomize/overlays/cloud --ignore-not-found',
    ]),
    [],
    'cloud: domain mapping, claim, Secret, then the overlay (namespace included)',
  );
});

t.test('undeploy selects the DomainMapping and the ClusterDomainClaim by labels they carry', async (t) => {
  // The selectors as make runs them; every object of those kinds that a deploy with DOMAIN applies
  // must match, or undeploy leaves it (and the claim keeps the domain from any other namespace).
  const lines = makeN('undeploy-knative', 'OVERLAY=cloud');
  const selector = (prefix: string) => {
    const line = lines.find((l) => l.startsWith(prefix)) ?? '';
    const labels = / -l (\S+)/.exec(line)?.[1] ?? '';
    t.ok(labels, `${prefix.trim()}: by label selector (${labels})`);
    return Object.fromEntries(labels.split(',').map((kv) => kv.split('=')));
  };
  const kinds: Record<string, Record<string, string>> = {
    DomainMapping: selector('kubectl delete domainmappings.serving.knative.dev '),
    ClusterDomainClaim: selector('kubectl delete clusterdomainclaims.networking.internal.knative.dev '),
  };
  const cases: [string, Record<string, string>][] = [
    ['cloud', { DOMAIN: 'numbers.example.org' }],
    ['cloud', { DOMAIN: 'numbers.example.org', TLS: 'own' }],
    ['minikube', { DOMAIN: 'numbers.example.org' }],
  ];
  for (const [overlay, env] of cases) {
    const r = deployScript(['render', overlay, ...(overlay === 'cloud' ? [IMAGE] : [])], {
      ...env,
      CERTS_DIR: t.testdir(),
    });
    const objs = parseManifests(r.stdout);
    const label = `${overlay} ${JSON.stringify(env)}`;
    for (const [kind, wanted] of Object.entries(kinds)) {
      const found = objs.filter((o) => o.kind === kind);
      t.equal(found.length, 1, `${label}: one ${kind} rendered`);
      for (const obj of found) {
        t.has(obj.metadata.labels ?? {}, wanted, `${label}: the ${kind} carries ${JSON.stringify(wanted)}`);
      }
    }
  }
});

t.test('make undeploy-knative goes on when the ClusterDomainClaims cannot be deleted', async (t) => {
  // Without cluster-admin the claims' delete is Forbidden; a refused connection stands in for any
  // failure of that one command here: the line as make runs it, with its shell flags.
  const lines = makeN('undeploy-knative');
  const claims = lines.find((l) => l.startsWith('kubectl delete clusterdomainclaims'));
  t.ok(claims, 'the claims are deleted by label');
  const r = spawnSync('bash', ['-eu', '-o', 'pipefail', '-c', claims ?? 'false'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KUBECONFIG: kubeconfig(t, `https://127.0.0.1:${await closedPort()}`),
      KUBECACHEDIR: t.testdir(),
    },
    timeout: 60_000,
  });
  t.equal(r.status, 0, 'the line succeeds although kubectl failed, so make goes on');
  t.match(r.stderr, /refused/, "kubectl's own reason is shown");
  t.match(
    r.stderr,
    /note: ClusterDomainClaims not deleted .*a cluster admin runs: kubectl delete clusterdomainclaims\.networking\.internal\.knative\.dev -l app\.kubernetes\.io\/name=random-number/,
    'with a note saying who removes them, and how',
  );
  t.same(
    inOrder(lines.slice(lines.indexOf(claims ?? '')), [
      'kubectl delete secret random-number-api-token random-number-tls -n default',
      'kubectl delete -k kustomize/overlays/minikube --ignore-not-found',
    ]),
    [],
    'and the Secrets and the Service are deleted after it',
  );
});

t.test('render with a namespace adds the rollout annotation, never the token', async (t) => {
  const pinned = `ghcr.io/acme/random-number@sha256:${'0123456789abcdef'.repeat(4)}`;
  const rollout = (objs: Manifest[]) =>
    ksvc(objs).spec.template.metadata.annotations['random-number/rollout'] as string | undefined;
  // API_TOKEN=none and an image by digest: nothing to ask the cluster (no Secret, no image built).
  const none = { API_TOKEN: 'none', KUBECONFIG: kubeconfig(t) };
  let r = deployScript(['render', 'cloud', pinned, 'random-number'], none);
  t.equal(r.status, 0, `renders${r.stderr ? `: ${r.stderr}` : ''}`);
  const objs = parseManifests(r.stdout);
  for (const obj of objs) t.doesNotThrow(() => validateManifest(obj), `${obj.kind} is valid`);
  t.equal(rollout(objs), 'token-secret=none', 'the revision template carries the annotation');
  t.equal(ksvc(objs).spec.template.spec.containers[0].image, pinned, 'and IMAGE');
  r = deployScript(['render', 'cloud', pinned], none);
  t.equal(rollout(parseManifests(r.stdout)), undefined, 'without a namespace (by hand, tests): none');
  // Every deploy renders in a temporary copy of kustomize/: none may pile up in /tmp.
  const tmp = t.testdir({});
  r = deployScript(['render', 'cloud', pinned, 'random-number'], { ...none, TMPDIR: tmp });
  t.equal(r.status, 0, `renders with TMPDIR=${tmp}`);
  t.same(readdirSync(tmp), [], 'and leaves nothing behind in TMPDIR');
  r = deployScript(['render', 'cloud', 'ghcr.io/acme/random-number:latest', 'random-number'], {
    ...none,
    TMPDIR: tmp,
  });
  t.not(r.status, 0, 'a refused render ...');
  t.same(readdirSync(tmp), [], '... leaves nothing behind either');

  // With a token: the Secret's resourceVersion, which needs the cluster; this one refuses.
  const server = `127.0.0.1:${await closedPort()}`;
  const good = 'tok-9a8b7c6d-never-printed-5e4f3a2b1c0d';
  const env = {
    PATH: binWith(t, ['bash', 'dirname', 'kubectl', 'mktemp', 'cp', 'rm']),
    KUBECONFIG: kubeconfig(t, `https://${server}`),
    KUBECACHEDIR: t.testdir(),
    API_TOKEN: good,
  };
  r = runScript('bash', ['-x', DEPLOY_SCRIPT, 'render', 'minikube', '', 'default'], env);
  t.equal(r.status, 1, 'no cluster to ask: fails');
  t.same(
    // `++`: bash -x's mark for a command substitution.
    r.stderr.split('\n').filter((l) => /^\++ kubectl /.test(l)),
    ["++ kubectl get secret random-number-api-token -n default -o 'jsonpath={.metadata.resourceVersion}'"],
    "it reads the Secret's resourceVersion, not its data",
  );
  t.match(r.stderr, new RegExp(`${server.replaceAll('.', '\\.')}.* refused`), "and stops on kubectl's error");
  t.equal(r.stdout, '', 'printing no manifests, so kubectl apply gets none');
  r = deployScript(['render', 'minikube', '', 'default'], env);
  t.notMatch(r.stdout + r.stderr, good, 'the token appears in no output');

  // cloud by tag: the ID of the image make built and pushed, from `docker image inspect` (no docker
  // here: the attempt shows in the trace, and its failure stops the render).
  r = runScript('bash', ['-x', DEPLOY_SCRIPT, 'render', 'cloud', IMAGE, 'random-number'], {
    ...none,
    PATH: env.PATH,
  });
  t.not(r.status, 0, `cloud by tag without docker: fails (${r.status})`);
  t.same(
    r.stderr.split('\n').filter((l) => /^\++ docker /.test(l)),
    [`++ docker image inspect --format '{{.Id}}' ${IMAGE}`],
    "it asks docker for the built image's ID",
  );
  t.match(r.stderr, /docker: command not found/, 'and stops when there is none');
  t.equal(r.stdout, '', 'printing no manifests');

  // minikube: the ID of the image built, from `minikube image ls` (not installed here).
  r = deployScript(['render', 'minikube', '', 'default'], { ...none, PATH: env.PATH });
  t.equal(r.status, 1, 'minikube without minikube image ls: fails');
  t.match(r.stderr, /no image random-number:dev in minikube image ls -p minikube/, 'and says which image');
  t.equal(r.stdout, '', 'printing no manifests');
});

t.test('the Secret steps write by server-side apply and drop the last-applied copy', async (t) => {
  const script = readFileSync(DEPLOY_SCRIPT, 'utf8');
  const fn = script.match(/^apply_secret\(\) \{\n[\s\S]*?^\}\n/m)?.[0] ?? '';
  t.match(fn, /kubectl apply --server-side --field-manager=(\S+)/, 'server-side apply');
  t.notMatch(fn, /--field-manager=kubectl\b/, 'not as manager "kubectl" (the API server syncs its copy)');
  t.match(
    fn,
    /kubectl annotate secret .*kubectl\.kubernetes\.io\/last-applied-configuration-/,
    'copy removed',
  );
  t.equal(
    script.match(/\| *\n? *apply_secret "\$(TLS_)?SECRET" "\$namespace"/g)?.length,
    2,
    'for both Secrets',
  );
  t.notMatch(script, /kubectl apply -f -/, 'no client-side apply of a Secret is left');
  // The function itself, run by bash with a Secret that holds nothing secret, against a closed port:
  // kubectl accepts every flag and fails only on the connection.
  const server = `127.0.0.1:${await closedPort()}`;
  const r = spawnSync('bash', ['-c', `${fn}\napply_secret s default`], {
    input: 'apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\ndata: {k: dg==}\n',
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KUBECONFIG: kubeconfig(t, `https://${server}`),
      KUBECACHEDIR: t.testdir(),
    },
    timeout: 60_000,
  });
  t.notMatch(
    r.stderr,
    /unknown (flag|shorthand|command)|usage:/i,
    'kubectl accepts the flags of both commands',
  );
  t.match(r.stderr, /error validating "STDIN".* refused/, 'the apply fails on the connection');
  t.match(
    r.stderr,
    new RegExp(`server ${server.replaceAll('.', '\\.')} was refused`),
    'so does the annotate',
  );
});

t.test('the Secret pipelines make exactly the Secrets the Service and the DomainMapping read', async (t) => {
  // Their pipelines, cut from the script and run by bash with `apply_secret` replaced by `cat`: what
  // would reach the cluster comes out on stdout. The whole steps first make sure the namespace exists,
  // which needs an API server (there is none here), so only the pipelines run; kubectl creates the
  // Secrets with --dry-run=client and labels with --local, and the empty kubeconfig names no cluster.
  const script = readFileSync(DEPLOY_SCRIPT, 'utf8');
  const names = script.match(/^readonly (TLS_)?SECRET=.*$/gm) ?? [];
  t.equal(names.length, 2, "the script's two Secret names");
  const token = script.match(
    /^ +[^\n]*"\$API_TOKEN" \|\n[\s\S]*?apply_secret "\$SECRET" "\$namespace"\n/m,
  )?.[0];
  const tls = script.match(
    /^ +kubectl create secret tls [\s\S]*?apply_secret "\$TLS_SECRET" "\$namespace"\n/m,
  )?.[0];
  t.ok(token && tls, 'both pipelines found');
  const cloud = kustomize('kustomize/overlays/cloud');
  const namespace: string = ksvc(cloud).metadata.namespace;
  const certs = t.testdir();
  const domain = 'numbers.example.org';
  t.equal(tlsCert(certs, [domain]).status, 0, 'a certificate from make tls-cert');
  const pipe = (body: string, env: Record<string, string>) => {
    const r = spawnSync(
      'bash',
      [
        '-c',
        `set -euo pipefail\nsource scripts/lib.sh\n${names.join('\n')}\napply_secret() { cat; }\nnamespace=${namespace}\n${body}`,
      ],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: process.env.HOME, KUBECONFIG: kubeconfig(t), ...env },
        timeout: 60_000,
      },
    );
    t.equal(r.status, 0, `the pipeline runs${r.stderr ? `: ${r.stderr}` : ''}`);
    return parseManifests(r.stdout);
  };

  const apiToken = 'tok-9a8b7c6d-never-printed-5e4f3a2b1c0d';
  const [tokenSecret, ...moreToken] = pipe(token ?? 'false', { API_TOKEN: apiToken });
  t.same(moreToken, [], 'token: one object');
  const envToken = container(ksvc(cloud)).env.find((e: Manifest) => e.name === 'API_TOKEN')?.valueFrom
    ?.secretKeyRef;
  t.equal(tokenSecret?.kind, 'Secret', 'token: a Secret');
  t.equal(tokenSecret?.metadata.name, envToken?.name, 'token: the one the Service reads');
  t.equal(tokenSecret?.metadata.namespace, namespace, `token: in the namespace given (${namespace})`);
  t.same(Object.keys(tokenSecret?.data ?? {}), [envToken?.key], 'token: under the key the Service reads');
  t.equal(
    Buffer.from(tokenSecret?.data?.[envToken?.key] ?? '', 'base64').toString('latin1'),
    apiToken,
    'token: exactly API_TOKEN, with no newline',
  );

  const [tlsSecret, ...moreTls] = pipe(tls ?? 'false', { DOMAIN: domain, CERTS_DIR: certs });
  t.same(moreTls, [], 'TLS: one object');
  const mapping = parseManifests(
    deployScript(['render', 'cloud', IMAGE], { DOMAIN: domain, TLS: 'own', CERTS_DIR: certs }).stdout,
  ).find((o) => o.kind === 'DomainMapping');
  t.equal(tlsSecret?.kind, 'Secret', 'TLS: a Secret');
  t.equal(tlsSecret?.type, 'kubernetes.io/tls', 'TLS: of type kubernetes.io/tls');
  t.equal(tlsSecret?.metadata.name, mapping?.spec.tls.secretName, 'TLS: the one the DomainMapping names');
  t.equal(
    tlsSecret?.metadata.namespace,
    mapping?.metadata.namespace,
    `TLS: in the DomainMapping's namespace (${namespace}), not default`,
  );
  t.equal(tlsSecret?.metadata.namespace, namespace, 'TLS: which is the cloud overlay namespace');
  t.same(
    tlsSecret?.metadata.labels,
    {
      'app.kubernetes.io/name': 'random-number',
      'networking.internal.knative.dev/certificate-uid': tlsSecret?.metadata.name,
    },
    'TLS: labelled for undeploy and with the certificate-uid Kourier filters on',
  );
  for (const [field, file] of [
    ['tls.crt', `${domain}.crt`],
    ['tls.key', `${domain}.key`],
  ]) {
    t.equal(
      Buffer.from(tlsSecret?.data?.[field as string] ?? '', 'base64').toString(),
      readFileSync(join(certs, file as string), 'utf8'),
      `TLS: ${field} is ${file}`,
    );
  }
});

t.test(
  "setup-minikube's ConfigMap patches: Kourier as the ingress, and the registry deploy-knative checks for",
  async (t) => {
    // Source checks: the patches need a cluster to run, and there is none here (nor a pretend one).
    const text = readFileSync(join(ROOT, 'scripts/setup-minikube.sh'), 'utf8');
    const patch = (map: string) =>
      JSON.parse(
        text.match(
          new RegExp(`configmap/${map} -n knative-serving --type merge \\\\\n\\s+-p '([^']+)'`),
        )?.[1] ?? '{}',
      ) as { data?: Record<string, string> };
    // Kourier's class, as its kourier.yaml and Knative's docs name it: any other leaves every route unserved.
    t.same(
      patch('config-network').data,
      { 'ingress-class': 'kourier.ingress.networking.knative.dev' },
      'Kourier',
    );
    const registries =
      patch('config-deployment').data?.['registries-skipping-tag-resolving']?.split(',') ?? [];
    // random-number:dev is docker.io/library/random-number:dev, which Knative's resolver names index.docker.io.
    t.ok(registries.includes('index.docker.io'), "minikube's image is never looked up on Docker Hub");
    const script = readFileSync(join(ROOT, 'scripts/deploy-knative.sh'), 'utf8');
    t.match(
      script,
      /== \*,index\.docker\.io,\* \]\]/,
      "and deploy-knative's check looks for that very entry",
    );
  },
);

t.test('setup-minikube starts a Kubernetes Knative accepts and checks a reused one', async (t) => {
  const text = readFileSync(join(ROOT, 'scripts/setup-minikube.sh'), 'utf8');
  const pinned = text.match(/KUBERNETES_VERSION="\$\{KUBERNETES_VERSION:-v1\.(\d+)\.\d+\}"/);
  const min = Number(text.match(/^readonly KUBERNETES_MIN_MINOR=(\d+)$/m)?.[1]);
  t.ok(pinned, 'a Kubernetes version is pinned');
  // knative.dev/pkg version.go at release-1.21: defaultMinimumVersion = "v1.33.0".
  t.match(text, /KNATIVE_VERSION:-1\.21\.\d+\}/, 'for Knative Serving 1.21 ...');
  t.equal(min, 33, '... whose minimum is Kubernetes 1.33');
  t.ok(Number(pinned?.[1]) >= min, 'the pinned version meets it');
  t.match(
    text,
    /minikube start -p "\$PROFILE" --kubernetes-version "\$KUBERNETES_VERSION"/,
    'passed on a start',
  );
  // The check of a reused cluster. Its regex, run by bash on /version answers as the API server words
  // them (kubectl get --raw prints them as they come); then the check itself, with the real kubectl
  // against a cluster that does not answer (there is none here, nor a pretend one).
  const re = text.match(/^version_re=.*$/m)?.[0] ?? '';
  const check = text.match(/^\{ \[\[ "\$\(kubectl get --raw \/version\)".*\n.*$/m)?.[0] ?? '';
  t.match(
    check,
    /BASH_REMATCH\[2\] >= KUBERNETES_MIN_MINOR/,
    'the check compares the minor version with the minimum',
  );
  const answer = (v: string) =>
    `{\n  "major": "1",\n  "minor": "${v.split('.')[1]}",\n  "gitVersion": "${v}",\n  "platform": "linux/amd64"\n}`;
  for (const [v, minor] of [
    ['v1.33.1', '33'],
    ['v1.32.0', '32'],
    ['v1.35.0-gke.1', '35'],
  ]) {
    const r = spawnSync(
      'bash',
      [
        '-c',
        `${re}\n[[ $1 =~ $version_re ]] && echo "\${BASH_REMATCH[1]} \${BASH_REMATCH[2]}"`,
        '_',
        answer(v as string),
      ],
      {
        encoding: 'utf8',
      },
    );
    t.equal(r.stdout, `${v} ${minor}\n`, `${v}: read as version ${v}, minor ${minor}`);
  }
  const fail = text.match(/^fail\(\) .*$/m)?.[0] ?? '';
  const r = spawnSync(
    'bash',
    [
      '-c',
      `set -euo pipefail\n${fail}\nKUBERNETES_MIN_MINOR=${min} KNATIVE_VERSION=1.21.0 KUBERNETES_VERSION=v1.34.0 PROFILE=minikube\n${re}\n${check}\necho passed`,
    ],
    {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        KUBECONFIG: kubeconfig(t, `https://127.0.0.1:${await closedPort()}`),
      },
      timeout: 60_000,
    },
  );
  t.equal(r.status, 1, 'a cluster that does not say its version: fails');
  t.notMatch(r.stdout, /passed/, 'before Knative is applied');
  t.match(
    r.stderr,
    "setup-minikube: minikube profile 'minikube' runs Kubernetes of unknown version; Knative Serving 1.21.0 needs 1.33 or later: minikube start -p minikube --kubernetes-version v1.34.0 upgrades it",
    'saying what Knative needs and how to get it',
  );
});

t.test('check names every missing piece and contacts no cluster', async (t) => {
  const noTools = binWith(t, ['bash', 'dirname']);
  const kubectlOnly = binWith(t, ['bash', 'dirname', 'kubectl']);
  const empty = kubeconfig(t);

  let r = deployScript(['check', 'minikube'], { PATH: kubectlOnly, KUBECONFIG: empty });
  t.equal(r.status, 1, 'minikube, no minikube binary, no context: fails');
  t.match(r.stderr, /minikube is not installed/, 'says minikube is missing');
  t.match(
    r.stderr,
    /kubectl has no current context.*make setup-minikube/,
    'says there is no kubectl context',
  );

  r = deployScript(['check', 'cloud', IMAGE], { PATH: kubectlOnly, KUBECONFIG: empty });
  t.equal(r.status, 1, 'cloud without docker or context: fails');
  t.match(r.stderr, /docker is not installed/, 'says docker is missing');
  t.match(r.stderr, /kubectl has no current context/, 'says there is no kubectl context');

  r = deployScript(['check', 'cloud', ''], { PATH: kubectlOnly, KUBECONFIG: empty });
  t.match(r.stderr, /IMAGE is required for OVERLAY=cloud/, 'cloud without IMAGE: says IMAGE is required');
  r = deployScript(['check', 'cloud', 'ghcr.io/acme/random-number:latest'], {
    PATH: kubectlOnly,
    KUBECONFIG: empty,
  });
  t.match(r.stderr, /uses :latest/, 'cloud with :latest: refused');

  r = deployScript(['check', 'minikube'], { PATH: kubectlOnly, KUBECONFIG: empty, API_TOKEN: 'has a space' });
  t.equal(r.status, 1, 'a token the service would refuse: fails');
  t.match(r.stderr, /must be a Bearer token/, 'check reports the token with the other problems');
  t.match(r.stderr, /kubectl has no current context/, 'and goes on to the rest');
  t.notMatch(r.stderr, /has a space/, 'without echoing the token');

  r = deployScript(['check', 'minikube'], { PATH: noTools });
  t.match(r.stderr, /kubectl is not installed/, 'no kubectl: says so');

  r = deployScript(['check', 'minikube'], {
    PATH: kubectlOnly,
    KUBECONFIG: kubeconfig(t, 'https://127.0.0.1:9', 'prod-cluster'),
  });
  t.match(
    r.stderr,
    /current context is 'prod-cluster', not minikube profile 'minikube'/,
    'minikube overlay against another context: refused before any request',
  );

  r = deployScript(['check', 'minikube', IMAGE], { PATH: kubectlOnly, KUBECONFIG: empty });
  t.match(r.stderr, /IMAGE is for OVERLAY=cloud/, 'IMAGE with minikube: refused, not silently ignored');

  r = deployScript(['not-ready', 'default'], { PATH: kubectlOnly, KUBECONFIG: empty });
  t.equal(r.status, 1, 'not-ready always fails (it runs after a failed wait)');
  t.match(r.stderr, /ksvc\/random-number in namespace default is not Ready/, 'and says which Service');

  r = deployScript(['check', 'nonsense'], { PATH: kubectlOnly, KUBECONFIG: empty });
  t.equal(r.status, 1, 'unknown overlay fails');
  t.match(r.stderr, /unknown OVERLAY 'nonsense'/, 'and names it');
});

t.test('make undeploy-knative deletes nothing from a cluster deploy-knative would not use', async (t) => {
  // kubectl itself, behind a shim that records each call: the deletes must never be reached.
  const bin = binWith(t, ['bash', 'dirname', 'grep']);
  const calls = join(bin, 'calls');
  const real = execFileSync('bash', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).trim();
  writeFileSync(join(bin, 'kubectl'), `#!/bin/bash\necho "$*" >> ${calls}\nexec ${real} "$@"\n`, {
    mode: 0o755,
  });
  const undeploy = (kube: string, overlay = 'minikube') =>
    spawnSync('make', ['-s', 'undeploy-knative', `OVERLAY=${overlay}`], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: `${bin}:${process.env.PATH}`, HOME: process.env.HOME, KUBECONFIG: kube },
    });
  const cases: [string, string, string, RegExp][] = [
    [
      'minikube',
      kubeconfig(t, 'https://127.0.0.1:9', 'prod-cluster'),
      'another context',
      /'prod-cluster', not minikube profile 'minikube'/,
    ],
    ['cloud', kubeconfig(t), 'no context', /kubectl has no current context/],
    [
      'cloud',
      kubeconfig(t, `https://127.0.0.1:${await closedPort()}`, 'gone'),
      'a cluster it cannot reach',
      /cannot reach the cluster of kubectl context 'gone'/,
    ],
  ];
  for (const [overlay, kube, what, reason] of cases) {
    const r = undeploy(kube, overlay);
    t.not(r.status, 0, `${overlay}, ${what}: make fails`);
    t.match(r.stderr, reason, `${overlay}, ${what}: says why`);
    const made = existsSync(calls) ? readFileSync(calls, 'utf8') : '';
    t.notMatch(made, /^delete/m, `${overlay}, ${what}: no kubectl delete ran`);
  }
});

t.test('check reports a cluster it cannot reach', async (t) => {
  const port = await closedPort();
  const r = deployScript(['check', 'cloud', IMAGE], {
    PATH: binWith(t, ['bash', 'dirname', 'kubectl', 'grep']),
    KUBECONFIG: kubeconfig(t, `https://127.0.0.1:${port}`, 'my-cluster'),
  });
  t.equal(r.status, 1, 'fails');
  t.match(
    r.stderr,
    /cannot reach the cluster of kubectl context 'my-cluster'/,
    'says the cluster is unreachable',
  );
});

t.test(
  'the token Secret step: a token, an existing Secret, or API_TOKEN=none; never echoes one',
  async (t) => {
    const PATH = binWith(t, ['bash', 'dirname', 'kubectl']);
    // A cluster that is configured but down: every kubectl call that needs the API server fails at
    // once, naming it, so each case shows how far the step got.
    const server = `127.0.0.1:${await closedPort()}`;
    // kubectl's discovery cache stays in the test's folder, not in ~/.kube.
    const env = { PATH, KUBECONFIG: kubeconfig(t, `https://${server}`), KUBECACHEDIR: t.testdir() };
    // kubectl words it by command ("The connection to the server ... was refused", "dial tcp ...:
    // connect: connection refused"); both name the server.
    const refused = new RegExp(`${server.replaceAll('.', '\\.')}\\b.* refused`);
    // The namespace make passes for the minikube overlay (`secret default`) is the Service's.
    const namespace = ksvc(kustomize('kustomize/overlays/minikube')).metadata.namespace;

    let r = deployScript(['secret', namespace], env);
    t.equal(r.status, 1, 'no API_TOKEN and no cluster to ask: fails');
    t.match(r.stderr, refused, 'after asking the cluster for an existing Secret (kubectl cannot reach it)');
    t.notMatch(r.stderr, /no Secret/, 'without claiming the Secret is missing');

    r = deployScript(['secret', namespace], { ...env, API_TOKEN: 'none' });
    t.equal(r.status, 0, 'API_TOKEN=none: nothing to write, no cluster needed');
    t.match(
      r.stderr,
      /API_TOKEN=none: .*the service will answer WITHOUT auth/,
      'and says plainly there is no auth',
    );
    t.notMatch(r.stderr, server, 'and kubectl is not called');

    const bad = 'has a space';
    r = deployScript(['secret', namespace], { ...env, API_TOKEN: bad });
    t.equal(r.status, 1, 'a token the service would refuse is refused here');
    t.match(r.stderr, /must be a Bearer token: letters, digits/, 'with the same rule as the service');
    t.notMatch(r.stderr, server, 'before kubectl is called');
    t.notMatch(r.stderr + r.stdout, bad, 'without echoing it');

    // A token the rule accepts (32 characters and more).
    const good = 'tok-9a8b7c6d-never-printed-5e4f3a2b1c0d';
    r = deployScript(['secret', namespace], { ...env, API_TOKEN: good });
    t.equal(r.status, 1, 'a good token but no cluster: fails');
    t.notMatch(r.stderr, /must be a Bearer token/, 'not on the token');
    t.match(r.stderr, refused, 'but on kubectl, which cannot reach the API server');
    t.notMatch(r.stderr + r.stdout, good, 'and the token appears in no output');
    // Why the `kubectl create secret` itself cannot be run here: before it, the step makes sure the
    // namespace exists (`kubectl get namespace || kubectl create namespace`), and both need an API
    // server; the second one failing ends the script (set -e). bash -x shows the commands it ran (and
    // the token, in its checks: this run's output is not checked for it).
    r = runScript('bash', ['-x', DEPLOY_SCRIPT, 'secret', namespace], { ...env, API_TOKEN: good });
    const traced = r.stderr.split('\n').filter((l) => l.startsWith('+ kubectl '));
    t.same(
      traced,
      [`+ kubectl get namespace ${namespace}`, `+ kubectl create namespace ${namespace}`],
      'the kubectl commands run: the namespace check, then its creation, which fails; the Secret step is not reached',
    );
    t.match(
      r.stderr.split('\n').at(-2),
      refused,
      "and the script's last words are kubectl's connection error",
    );
  },
);

t.test('usage errors are one clear line', async (t) => {
  for (const args of [[], ['deploy'], ['url', 'minikube']]) {
    const r = deployScript(args);
    t.equal(r.status, 1, `'${args.join(' ')}' fails`);
    t.match(r.stderr, /^deploy-knative: usage: /, 'with a usage line');
  }
  const r = deployScript(['render', 'minikube', IMAGE]);
  t.match(r.stderr, /IMAGE is for OVERLAY=cloud/, 'IMAGE with minikube is refused, not ignored');
});

t.test('make deploy-knative fails before building when something is missing', async (t) => {
  const r = spawnSync('make', ['deploy-knative', 'OVERLAY=cloud', 'IMAGE='], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: kubeconfig(t) },
    timeout: 60_000,
  });
  t.not(r.status, 0, 'make stops');
  t.match(r.stderr, /IMAGE is required for OVERLAY=cloud/, 'and the message says what is missing');
  t.notMatch(r.stdout, /^docker build/m, 'no docker build was started');
});
