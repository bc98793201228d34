import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import {
  deployScript,
  find,
  ksvc,
  kustomize,
  type Manifest,
  parseManifests,
  ROOT,
  validateManifest,
} from './helpers/kustomize.ts';

const OVERLAYS = ['minikube', 'cloud'];
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

const base = kustomize('kustomize/base');
const rendered: Record<string, Manifest[]> = {
  base,
  minikube: kustomize('kustomize/overlays/minikube'),
  cloud: kustomize('kustomize/overlays/cloud'),
};

function renderCloud(image: string, env: Record<string, string> = {}): Manifest[] {
  const r = deployScript(['render', 'cloud', image], env);
  if (r.status !== 0) throw new Error(`render failed: ${r.stderr}`);
  return parseManifests(r.stdout);
}

const container = (svc: Manifest): Manifest => svc.spec.template.spec.containers[0];
const annotations = (svc: Manifest): Record<string, string> => svc.spec.template.metadata.annotations;

/** JSON-pointer paths of every leaf where `a` and `b` differ. */
function diffPaths(a: unknown, b: unknown, path = ''): string[] {
  if (a === b) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      diffPaths(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        `${path}/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`,
      ),
    );
  }
  return [path];
}

t.test('every overlay builds with kubectl kustomize and every object passes its schemas', async (t) => {
  const withDomain = renderCloud('ghcr.io/acme/random-number:1.2.3', { DOMAIN: 'api.example.org' });
  for (const [name, objs] of Object.entries({ ...rendered, 'cloud+domain': withDomain })) {
    t.ok(objs.length > 0, `${name}: kustomize produced objects`);
    for (const obj of objs) {
      t.doesNotThrow(
        () => validateManifest(obj),
        `${name}: ${obj.kind} ${obj.metadata?.name} is valid (model and CRD schema)`,
      );
    }
  }
  t.same(
    withDomain.map((o) => o.kind).sort(),
    ['ClusterDomainClaim', 'DomainMapping', 'Namespace', 'Service'],
    'the domain component adds exactly a DomainMapping and its ClusterDomainClaim',
  );
});

t.test('the CRD check is strict: a misspelt field is rejected, as the API server would', async (t) => {
  const svc = structuredClone(ksvc(base));
  container(svc).readinessprobe = container(svc).readinessProbe;
  t.throws(() => validateManifest(svc), /readinessprobe/, 'unknown container field named in the error');
  const badScale = structuredClone(ksvc(base));
  badScale.spec.template.spec.containerConcurrency = '100';
  t.throws(() => validateManifest(badScale), /containerConcurrency/, 'a quoted containerConcurrency fails');
});

t.test('scale to zero with the KPA, bounded in every overlay', async (t) => {
  const max: Record<string, number> = {};
  for (const [name, objs] of Object.entries(rendered)) {
    const a = annotations(ksvc(objs));
    t.equal(a['autoscaling.knative.dev/class'], 'kpa.autoscaling.knative.dev', `${name}: KPA class`);
    t.equal(a['autoscaling.knative.dev/min-scale'], '0', `${name}: min-scale "0" (scales to zero)`);
    t.equal(a['autoscaling.knative.dev/metric'], 'concurrency', `${name}: scales on concurrency (KPA)`);
    t.equal(
      a['autoscaling.knative.dev/initial-scale'],
      '1',
      `${name}: initial-scale "1" (a new revision starts one pod, so the wait for Ready proves it runs)`,
    );
    max[name] = Number(a['autoscaling.knative.dev/max-scale']);
    t.ok(Number.isInteger(max[name]) && (max[name] ?? 0) >= 1, `${name}: max-scale is a positive integer`);
    t.ok(Number(a['autoscaling.knative.dev/target']) > 0, `${name}: a concurrency target is set`);
    const cc = ksvc(objs).spec.template.spec.containerConcurrency;
    t.ok(
      Number(a['autoscaling.knative.dev/target']) <= cc,
      `${name}: the soft target does not exceed containerConcurrency`,
    );
  }
  t.ok((max.minikube ?? 0) <= 3, 'minikube: a small max-scale');
  t.ok((max.cloud ?? 0) > (max.minikube ?? 0), 'cloud: a larger max-scale than minikube');
});

t.test('restricted Pod Security Standard for the container, matching the image user', async (t) => {
  const user = /^USER\s+(\d+):(\d+)\s*$/m.exec(readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8'));
  t.ok(user, 'the Dockerfile has a numeric USER uid:gid');
  for (const [name, objs] of Object.entries(rendered)) {
    const svc = ksvc(objs);
    const sc = container(svc).securityContext;
    t.equal(sc.runAsNonRoot, true, `${name}: runAsNonRoot`);
    t.equal(sc.runAsUser, Number(user?.[1]), `${name}: runAsUser is the image's numeric user`);
    t.equal(sc.runAsGroup, Number(user?.[2]), `${name}: runAsGroup is the image's group`);
    t.not(sc.runAsUser, 0, `${name}: not root`);
    t.equal(sc.allowPrivilegeEscalation, false, `${name}: no privilege escalation`);
    t.same(sc.capabilities, { drop: ['ALL'] }, `${name}: drops ALL capabilities, adds none`);
    t.same(sc.seccompProfile, { type: 'RuntimeDefault' }, `${name}: seccomp RuntimeDefault`);
    t.equal(sc.readOnlyRootFilesystem, true, `${name}: read-only root filesystem`);
    t.notOk(sc.privileged, `${name}: not privileged`);
    t.equal(svc.spec.template.spec.enableServiceLinks, false, `${name}: enableServiceLinks false`);
    t.equal(
      svc.spec.template.spec.automountServiceAccountToken,
      false,
      `${name}: no ServiceAccount token mounted (the service never calls the API server)`,
    );
    t.notOk(svc.spec.template.spec.volumes, `${name}: no volumes (nothing to write)`);
  }
  const ns = find(rendered.cloud ?? [], 'Namespace')[0];
  t.same(
    ns?.metadata.labels,
    {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    },
    'cloud: its namespace enforces the restricted profile, and warns and audits against it',
  );
});

t.test('the token comes from a required Secret that is never committed', async (t) => {
  for (const [name, objs] of Object.entries(rendered)) {
    t.same(find(objs, 'Secret'), [], `${name}: no Secret object rendered`);
    const token = container(ksvc(objs)).env.find((e: Manifest) => e.name === 'API_TOKEN');
    // Exactly these fields: `optional: true` would let a missing or misnamed Secret run the service open.
    t.same(
      token?.valueFrom,
      { secretKeyRef: { name: 'random-number-api-token', key: 'token' } },
      `${name}: API_TOKEN from Secret random-number-api-token key token, not optional`,
    );
    t.notOk(
      container(ksvc(objs)).env.some((e: Manifest) => e.name === 'API_TOKEN' && 'value' in e),
      `${name}: no literal API_TOKEN value`,
    );
  }
  // Read, not run: before `kubectl create secret` the script's Secret step makes sure the namespace
  // exists, which needs an API server; there is none here (nor a pretend one), so `kubectl create
  // namespace` fails and set -e ends it first (test/kustomize-deploy.test.ts runs it that far).
  const names = new Set(
    Object.values(rendered).map(
      (objs) =>
        container(ksvc(objs)).env.find((e: Manifest) => e.name === 'API_TOKEN')?.valueFrom?.secretKeyRef
          ?.name,
    ),
  );
  t.equal(names.size, 1, 'base and overlays read the token from one Secret');
  const [name] = names;
  const script = readFileSync(resolve(ROOT, 'scripts/deploy-knative.sh'), 'utf8');
  t.match(script, new RegExp(`^readonly SECRET=${name}$`, 'm'), `the deploy script's Secret is ${name}`);
  t.match(
    script,
    /^ {6}kubectl create secret generic "\$SECRET" /m,
    'and its Secret step creates that one (the trace line it prints is not enough)',
  );
});

t.test('no auth only when asked for: API_TOKEN=none renders without any token reference', async (t) => {
  const cases: [string, string[], Record<string, string>][] = [
    ['minikube', [], { API_TOKEN: 'none' }],
    ['cloud', ['ghcr.io/acme/random-number:1.2.3'], { API_TOKEN: 'none' }],
    ['minikube+domain', [], { API_TOKEN: 'none', DOMAIN: 'numbers.example.org' }],
  ];
  for (const [name, args, env] of cases) {
    const r = deployScript(['render', name.replace('+domain', ''), ...args], env);
    t.equal(r.status, 0, `${name}: renders${r.stderr ? `: ${r.stderr}` : ''}`);
    const objs = parseManifests(r.stdout);
    for (const obj of objs) t.doesNotThrow(() => validateManifest(obj), `${name}: ${obj.kind} is valid`);
    const c = container(ksvc(objs));
    t.notOk(
      c.env.some((e: Manifest) => e.name === 'API_TOKEN'),
      `${name}: no API_TOKEN variable (the no-auth component)`,
    );
    t.notMatch(
      r.stdout,
      /secretKeyRef|random-number-api-token/,
      `${name}: no reference to the token Secret at all`,
    );
    t.same(
      c.env.map((e: Manifest) => e.name),
      ['LOG_LEVEL', 'SHUTDOWN_TIMEOUT_MS'],
      `${name}: the other variables stay`,
    );
    if (env.DOMAIN)
      t.equal(find(objs, 'DomainMapping').length, 1, `${name}: the domain component is still added`);
  }

  for (const token of ['', 'tok-9a8b7c6d']) {
    const r = deployScript(['render', 'minikube'], { API_TOKEN: token });
    t.equal(r.status, 0, `API_TOKEN='${token ? '<a token>' : ''}': renders`);
    t.same(
      container(ksvc(parseManifests(r.stdout))).env.find((e: Manifest) => e.name === 'API_TOKEN')?.valueFrom,
      { secretKeyRef: { name: 'random-number-api-token', key: 'token' } },
      `API_TOKEN='${token ? '<a token>' : ''}': the required Secret reference stays`,
    );
  }
});

t.test('the no-auth component refuses to remove anything but API_TOKEN', async (t) => {
  // A copy of kustomize/ whose base lists API_TOKEN first: the component's index no longer fits.
  const dir = t.testdir();
  cpSync(resolve(ROOT, 'kustomize'), join(dir, 'kustomize'), { recursive: true });
  const service = join(dir, 'kustomize/base/service.yaml');
  const svc = parse(readFileSync(service, 'utf8')) as Manifest;
  const env: Manifest[] = container(svc).env;
  container(svc).env = [
    ...env.filter((e) => e.name === 'API_TOKEN'),
    ...env.filter((e) => e.name !== 'API_TOKEN'),
  ];
  writeFileSync(service, stringify(svc));
  mkdirSync(join(dir, 'k'));
  writeFileSync(
    join(dir, 'k/kustomization.yaml'),
    'resources: [../kustomize/overlays/minikube]\ncomponents: [../kustomize/components/no-auth]\n',
  );
  const r = spawnSync('kubectl', ['kustomize', join(dir, 'k')], { encoding: 'utf8' });
  t.not(r.status, 0, 'kubectl kustomize fails rather than removing another variable');
  t.match(r.stderr, /env\/2\/name failed: test failed/, 'on the guard of the JSON patch');
});

t.test(
  'kustomizations use labels (includeSelectors: false), never commonLabels or generated secrets',
  async (t) => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else if (e.name === 'kustomization.yaml') files.push(join(dir, e.name));
      }
    };
    walk(resolve(ROOT, 'kustomize'));
    t.ok(files.length >= 4, 'base, two overlays and the component have kustomizations');
    for (const file of files) {
      const k = parse(readFileSync(file, 'utf8')) as Manifest;
      const rel = file.slice(ROOT.length + 1);
      for (const deprecated of [
        'commonLabels',
        'commonAnnotations',
        'vars',
        'bases',
        'patchesStrategicMerge',
      ]) {
        t.notOk(deprecated in k, `${rel}: no deprecated ${deprecated}`);
      }
      t.notOk('secretGenerator' in k, `${rel}: no secretGenerator (no secret value in the repo)`);
    }
    const baseK = parse(readFileSync(resolve(ROOT, 'kustomize/base/kustomization.yaml'), 'utf8')) as Manifest;
    t.equal(baseK.labels?.[0]?.includeSelectors, false, 'base: labels with includeSelectors: false');
    const svc = ksvc(base);
    t.equal(
      svc.metadata.labels['app.kubernetes.io/name'],
      'random-number',
      'base: app.kubernetes.io/name label',
    );
    t.equal(svc.metadata.labels['app.kubernetes.io/part-of'], 'random-number', 'base: part-of label');
    t.same(
      svc.spec.template.metadata.labels,
      { 'app.kubernetes.io/name': 'random-number', 'app.kubernetes.io/part-of': 'random-number' },
      'base: pods carry app.kubernetes.io/name and part-of too (Knative copies neither from the Service)',
    );
  },
);

t.test('overlays differ from the base only where intended', async (t) => {
  const baseSvc = ksvc(base);
  const allowed: Record<string, RegExp[]> = {
    minikube: [
      /^\/metadata\/namespace$/,
      /^\/spec\/template\/metadata\/annotations\/autoscaling\.knative\.dev~1max-scale$/,
      /^\/spec\/template\/spec\/containers\/0\/image$/,
      /^\/spec\/template\/spec\/containers\/0\/imagePullPolicy$/,
      /^\/spec\/template\/spec\/containers\/0\/resources\//,
    ],
    cloud: [
      /^\/metadata\/namespace$/,
      /^\/spec\/template\/metadata\/annotations\/autoscaling\.knative\.dev~1max-scale$/,
      /^\/spec\/template\/spec\/containers\/0\/image$/,
      /^\/spec\/template\/spec\/containers\/0\/resources\//,
    ],
  };
  for (const name of OVERLAYS) {
    const objs = rendered[name] ?? [];
    const paths = diffPaths(baseSvc, ksvc(objs));
    const unexpected = paths.filter((p) => !allowed[name]?.some((re) => re.test(p)));
    t.same(
      unexpected,
      [],
      `${name}: Knative Service differs from base only in image, scale, resources, namespace`,
    );
    t.ok(
      paths.some((p) => p.includes('/resources/')),
      `${name}: sets its own resources`,
    );
    const others = objs.filter((o) => o !== ksvc(objs)).map((o) => o.kind);
    t.same(
      others,
      name === 'cloud' ? ['Namespace'] : [],
      `${name}: extra objects are only the intended ones`,
    );
  }
  const minikube = container(ksvc(rendered.minikube ?? []));
  t.equal(minikube.image, 'random-number:dev', 'minikube: the image built inside minikube');
  t.equal(minikube.imagePullPolicy, 'IfNotPresent', 'minikube: never pulled from a registry');
  t.equal(ksvc(rendered.minikube ?? []).metadata.namespace, 'default', 'minikube: namespace default');
  const cloud = ksvc(rendered.cloud ?? []);
  t.equal(cloud.metadata.namespace, 'random-number', 'cloud: its own namespace');
  t.equal(find(rendered.cloud ?? [], 'Namespace')[0]?.metadata.name, 'random-number', 'cloud: creates it');
  const res = (o: Manifest) => container(ksvc(o as Manifest[])).resources;
  t.ok(
    Number.parseInt(res(rendered.cloud ?? []).limits.memory, 10) >
      Number.parseInt(res(rendered.minikube ?? []).limits.memory, 10),
    'cloud: more memory than minikube',
  );
});

t.test('the cloud image is a pinned registry image, never :latest', async (t) => {
  const image: string = container(ksvc(rendered.cloud ?? [])).image;
  t.match(image, /^[a-z0-9.-]+\.[a-z]+(:\d+)?\/.+/, 'committed placeholder names a registry host');
  t.notMatch(image, /:latest$/, 'committed placeholder is not :latest');
  t.match(image, /:[\w][\w.-]*$|@sha256:[0-9a-f]{64}$/, 'committed placeholder has a tag or digest');

  const tagged = renderCloud('registry.example.com:5000/team/random-number:2.0.1');
  t.equal(
    container(ksvc(tagged)).image,
    'registry.example.com:5000/team/random-number:2.0.1',
    'IMAGE by tag',
  );
  const pinned = renderCloud(`ghcr.io/acme/random-number@${DIGEST}`);
  t.equal(container(ksvc(pinned)).image, `ghcr.io/acme/random-number@${DIGEST}`, 'IMAGE by digest');
  t.notOk(find(pinned, 'DomainMapping').length, 'no DomainMapping unless DOMAIN is given');

  for (const [bad, why] of [
    ['ghcr.io/acme/random-number:latest', /:latest/],
    ['ghcr.io/acme/random-number', /no tag/],
    ['', /IMAGE is required/],
    ['random-number:1.0.0', /names no registry/],
    ['ghcr.io/acme/random-number@sha256:abc', /malformed digest/],
    [`ghcr.io/acme/random-number@sha256:${'0'.repeat(65)}`, /malformed digest: expected @sha256:<64 hex/],
    ['ghcr.io/acme/random-number:1.0.0 --privileged', /contains spaces or quotes/],
    ['ghcr.io/acme/random-number:1.0.0"', /contains spaces or quotes/],
  ] as const) {
    const r = deployScript(['render', 'cloud', bad]);
    t.equal(r.status, 1, `render refuses IMAGE '${bad}'`);
    t.match(r.stderr, why, `and says why (${why})`);
    t.equal(r.stdout, '', 'and prints no manifests');
  }
});

t.test(
  'DOMAIN maps the user domain to the Service in its namespace, and nothing is written to the tree',
  async (t) => {
    const status = () =>
      execFileSync('git', ['status', '--porcelain', '--', 'kustomize'], { cwd: ROOT, encoding: 'utf8' });
    const before = status();
    const objs = renderCloud('ghcr.io/acme/random-number:1.2.3', { DOMAIN: 'numbers.example.org' });
    t.equal(status(), before, 'rendering left kustomize/ untouched');
    const svc = ksvc(objs);
    const dm = find(objs, 'DomainMapping')[0];
    t.equal(dm?.metadata.name, 'numbers.example.org', 'DomainMapping is named after DOMAIN');
    t.equal(dm?.metadata.namespace, svc.metadata.namespace, 'DomainMapping lives beside the Service');
    t.same(
      dm?.spec.ref,
      { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: svc.metadata.name },
      'DomainMapping points at the Knative Service',
    );
    const claim = find(objs, 'ClusterDomainClaim')[0];
    t.equal(claim?.metadata.name, 'numbers.example.org', 'the claim is for DOMAIN');
    t.equal(claim?.spec.namespace, svc.metadata.namespace, 'and grants it to the Service namespace');
    t.notOk(claim?.metadata.namespace, 'ClusterDomainClaim is cluster-scoped');

    for (const [overlay, domain, why] of [
      ['cloud', 'Not_A_Domain', /not a lower-case DNS name/],
      // On minikube DOMAIN is served with your own certificate (test/kustomize-tls.test.ts).
      ['minikube', 'api.example.org', /TLS=cert-manager is for OVERLAY=cloud/],
    ] as const) {
      const r = deployScript(['render', overlay, ...(overlay === 'cloud' ? ['ghcr.io/a/b:1.0.0'] : [])], {
        DOMAIN: domain,
        ...(overlay === 'minikube' ? { TLS: 'cert-manager' } : {}),
      });
      t.equal(r.status, 1, `render ${overlay} refuses DOMAIN=${domain}`);
      t.match(r.stderr, why, `and says why (${why})`);
    }
  },
);
