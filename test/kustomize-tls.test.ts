import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  binWith,
  closedPort,
  DEPLOY_SCRIPT,
  deployScript,
  find,
  ksvc,
  kubeconfig,
  type Manifest,
  parseManifests,
  ROOT,
  runScript,
  validateManifest,
} from './helpers/kustomize.ts';
import { reissue, tlsCert } from './helpers/tls.ts';

// DOMAIN with TLS=own (your certificate, `make tls-cert`) and TLS=cert-manager, on both overlays:
// rendered by the real script with kubectl kustomize, validated against the Knative CRD schemas and
// kubernetes-models, and the Secret step checked without a cluster (nothing here reaches one).

const DOMAIN = 'numbers.example.org';
const IMAGE = 'ghcr.io/acme/random-number:1.4.2';

function render(overlay: string, env: Record<string, string>): Manifest[] {
  const r = deployScript(['render', overlay, ...(overlay === 'cloud' ? [IMAGE] : [])], env);
  if (r.status !== 0) throw new Error(`render ${overlay} failed: ${r.stderr}`);
  return parseManifests(r.stdout);
}

function makeN(...args: string[]): string {
  return execFileSync('make', ['-n', ...args], { cwd: ROOT, encoding: 'utf8' });
}

t.test('TLS=own renders on a clean clone, on both overlays, and every object is valid', async (t) => {
  // No certificate files at all: rendering must not need them (CI, a fresh clone).
  const empty = t.testdir();
  for (const overlay of ['minikube', 'cloud']) {
    const objs = render(overlay, { DOMAIN, TLS: 'own', CERTS_DIR: empty });
    for (const obj of objs) {
      t.doesNotThrow(() => validateManifest(obj), `${overlay}: ${obj.kind} ${obj.metadata?.name} is valid`);
    }
    const [mapping] = find(objs, 'DomainMapping');
    const namespace = ksvc(objs).metadata.namespace;
    t.equal(mapping?.metadata.name, DOMAIN, `${overlay}: the DomainMapping is named DOMAIN`);
    t.equal(mapping?.metadata.namespace, namespace, `${overlay}: in the Service's namespace (${namespace})`);
    t.same(mapping?.spec.tls, { secretName: 'random-number-tls' }, `${overlay}: spec.tls.secretName`);
    t.same(
      mapping?.spec.ref,
      { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'random-number' },
      `${overlay}: it points at the Service`,
    );
    const [claim] = find(objs, 'ClusterDomainClaim');
    t.equal(claim?.metadata.name, DOMAIN, `${overlay}: the claim is for DOMAIN`);
    t.equal(claim?.spec.namespace, namespace, `${overlay}: and grants it to the Service's namespace`);
    t.notOk(
      objs.some((o) => o.kind === 'Secret'),
      `${overlay}: no Secret is rendered (the key never goes through kustomize or git)`,
    );
  }
  t.equal(
    render('minikube', { DOMAIN, CERTS_DIR: empty }).find((o) => o.kind === 'DomainMapping')?.spec.tls
      ?.secretName,
    'random-number-tls',
    'minikube: DOMAIN alone means TLS=own',
  );
});

t.test(
  'TLS=cert-manager keeps the cloud path: no secretName, the certificate comes from the cluster',
  async (t) => {
    const envs: Record<string, string>[] = [{ DOMAIN }, { DOMAIN, TLS: 'cert-manager' }];
    for (const env of envs) {
      const objs = render('cloud', env);
      for (const obj of objs) t.doesNotThrow(() => validateManifest(obj), `${obj.kind} is valid`);
      const label = JSON.stringify(env);
      const namespace = ksvc(objs).metadata.namespace;
      // The mapping first: "no spec.tls" alone would also hold if DOMAIN had been dropped entirely.
      const mappings = find(objs, 'DomainMapping');
      t.same(
        mappings.map((m) => [m.metadata.name, m.metadata.namespace]),
        [[DOMAIN, namespace]],
        `${label}: exactly one DomainMapping, named DOMAIN, in the Service's namespace (${namespace})`,
      );
      t.same(
        mappings[0]?.spec.ref,
        { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'random-number' },
        `${label}: it points at the Service`,
      );
      t.same(
        find(objs, 'ClusterDomainClaim').map((c) => [c.metadata.name, c.spec.namespace]),
        [[DOMAIN, namespace]],
        `${label}: exactly one ClusterDomainClaim, for DOMAIN, granted to the Service's namespace`,
      );
      t.ok(
        mappings[0] && !('tls' in mappings[0].spec),
        `${label}: no spec.tls (Knative's integration supplies it)`,
      );
    }
    const r = deployScript(['render', 'minikube'], { DOMAIN, TLS: 'cert-manager' });
    t.equal(r.status, 1, 'cert-manager on minikube: refused');
    t.match(
      r.stderr,
      /TLS=cert-manager is for OVERLAY=cloud .*use TLS=own with make tls-cert DOMAIN=/,
      'with the alternative',
    );
  },
);

t.test('bad TLS settings: one clear line', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ TLS: 'own' }, /^deploy-knative: TLS=own needs DOMAIN/],
    [{ DOMAIN, TLS: 'letsencrypt' }, /TLS must be own .* or cert-manager .*got 'letsencrypt'/],
    [{ DOMAIN: 'Numbers.Example.ORG', TLS: 'own' }, /is not a lower-case DNS name/],
  ];
  for (const [env, message] of cases) {
    const r = deployScript(['render', 'minikube'], env);
    t.equal(r.status, 1, `${JSON.stringify(env)}: fails`);
    t.match(r.stderr, message, `${JSON.stringify(env)}: ${message}`);
  }
});

t.test('make -n deploy-knative shows the TLS Secret step before the DomainMapping is applied', async (t) => {
  const minikube = makeN('deploy-knative', `DOMAIN=${DOMAIN}`);
  const lines = minikube.split('\n');
  const secret = lines.findIndex((l) =>
    l.startsWith('scripts/deploy-knative.sh tls-secret minikube default'),
  );
  const apply = lines.findIndex((l) =>
    l.startsWith("scripts/deploy-knative.sh render minikube '' default | kubectl apply -f -"),
  );
  t.ok(secret >= 0, 'minikube + DOMAIN: the tls-secret step is shown');
  t.ok(apply > secret, 'and the manifests (with the DomainMapping) are applied after it');
  t.match(minikube, `certs/${DOMAIN}.crt`, 'it names the certificate file');

  const cloud = makeN('deploy-knative', 'OVERLAY=cloud', `IMAGE=${IMAGE}`, `DOMAIN=${DOMAIN}`, 'TLS=own');
  t.match(
    cloud,
    /^scripts\/deploy-knative\.sh tls-secret cloud random-number/m,
    'cloud + TLS=own: shown, in the cloud namespace',
  );
  t.notMatch(
    makeN('deploy-knative', 'OVERLAY=cloud', `IMAGE=${IMAGE}`, `DOMAIN=${DOMAIN}`),
    /tls-secret/,
    'cloud + DOMAIN (cert-manager): no Secret step',
  );
  t.notMatch(makeN('deploy-knative'), /tls-secret/, 'no DOMAIN: no TLS Secret step');
  t.match(
    makeN('undeploy-knative'),
    /kubectl delete secret random-number-api-token random-number-tls -n default --ignore-not-found/,
    'undeploy removes the TLS Secret too',
  );
});

t.test(
  'the TLS Secret the script writes and undeploy deletes is the one the DomainMapping names',
  async (t) => {
    const [mapping] = find(
      render('minikube', { DOMAIN, TLS: 'own', CERTS_DIR: t.testdir() }),
      'DomainMapping',
    );
    const name: string = mapping?.spec.tls.secretName;
    t.ok(name, `the own-tls component names Secret ${name}`);
    // Read, not run: the step that creates it first makes sure the namespace exists, which needs an API
    // server (test/kustomize-deploy.test.ts runs its pipeline alone, with whatever name the script has).
    const script = readFileSync(DEPLOY_SCRIPT, 'utf8');
    t.match(
      script,
      new RegExp(`^readonly TLS_SECRET=${name}$`, 'm'),
      `the deploy script's TLS Secret is ${name}`,
    );
    t.match(
      script,
      /^ {2}kubectl create secret tls "\$TLS_SECRET" /m,
      'and its tls-secret step creates that one (the trace line it prints is not enough)',
    );
    for (const overlay of ['minikube', 'cloud']) {
      const line = makeN('undeploy-knative', `OVERLAY=${overlay}`)
        .split('\n')
        .find((l) => l.startsWith('kubectl delete secret '));
      t.match(
        line,
        new RegExp(`^kubectl delete secret (\\S+ )*${name} `),
        `${overlay}: undeploy deletes ${name}`,
      );
    }
  },
);

t.test(
  'check and tls-secret refuse a missing, foreign, expired or mismatched certificate before the cluster',
  async (t) => {
    const dir = t.testdir();
    const PATH = binWith(t, ['bash', 'dirname', 'kubectl', 'openssl']);
    const KUBECONFIG = kubeconfig(t, `https://127.0.0.1:${await closedPort()}`);
    const env = { PATH, KUBECONFIG, DOMAIN, TLS: 'own', CERTS_DIR: dir };

    let r = deployScript(['tls-secret', 'minikube', 'default'], env);
    t.equal(r.status, 1, 'no certificate: fails');
    t.match(
      r.stderr,
      `TLS=own needs ${dir}/numbers.example.org.crt and ${dir}/numbers.example.org.key: run CERTS_DIR=${dir} make tls-cert DOMAIN=numbers.example.org`,
      'says how to make one, in the CERTS_DIR it looked in',
    );
    r = deployScript(['check', 'minikube'], env);
    t.match(r.stderr, /TLS=own needs .*make tls-cert/, 'check reports it with the other problems');
    r = deployScript(['tls-secret', 'cloud', 'default'], { ...env, TLS: 'letsencrypt' });
    t.equal(r.status, 1, 'an unknown TLS mode: tls-secret run by hand fails too');
    t.match(r.stderr, /TLS must be own .* or cert-manager .*\(got 'letsencrypt'\)/, 'naming the two modes');
    t.notMatch(r.stderr, /no TLS Secret to write/, 'rather than saying there is nothing to do');

    // Its own folder: a CA made for one domain issues for no other (tls-cert's name constraint).
    const elsewhere = join(dir, 'elsewhere');
    t.equal(tlsCert(elsewhere, ['other.example.org']).status, 0, 'a certificate for another name');
    writeFileSync(join(dir, `${DOMAIN}.crt`), readFileSync(join(elsewhere, 'other.example.org.crt')));
    writeFileSync(join(dir, `${DOMAIN}.key`), readFileSync(join(elsewhere, 'other.example.org.key')));
    r = deployScript(['tls-secret', 'minikube', 'default'], env);
    t.match(
      r.stderr,
      /numbers\.example\.org\.crt is not a certificate for numbers\.example\.org/,
      'another name: refused',
    );

    t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'a CA and certificate for DOMAIN');
    reissue(dir, DOMAIN, -30, -1);
    r = deployScript(['tls-secret', 'minikube', 'default'], env);
    t.match(
      r.stderr,
      `has expired: run CERTS_DIR=${dir} make tls-cert DOMAIN=numbers.example.org to renew it`,
      'expired: refused',
    );

    t.equal(tlsCert(dir, [DOMAIN]).status, 0, 'a good certificate');
    const goodKey = readFileSync(join(dir, `${DOMAIN}.key`));
    writeFileSync(join(dir, `${DOMAIN}.key`), readFileSync(join(elsewhere, 'other.example.org.key')));
    r = deployScript(['tls-secret', 'minikube', 'default'], env);
    t.match(r.stderr, /numbers\.example\.org\.key is not the key of/, 'a key that does not match: refused');
    writeFileSync(join(dir, `${DOMAIN}.key`), goodKey);

    r = deployScript(['tls-secret', 'minikube', 'default'], env);
    t.equal(r.status, 1, 'all good, but no cluster: kubectl fails');
    t.match(r.stderr, /127\.0\.0\.1/, 'with kubectl saying it cannot reach the API server');
    const key = goodKey.toString().split('\n')[1] ?? 'unreachable';
    t.notMatch(r.stdout + r.stderr, key, 'the private key appears in no output of the checks');
    t.notMatch(r.stdout + r.stderr, /PRIVATE KEY|tls\.key:/, 'nor any PEM or Secret data');
    // How far that got: the step makes sure the namespace exists first, which needs an API server;
    // `kubectl create namespace` failing ends the script (set -e) before `kubectl create secret tls`,
    // so what that command prints is not seen here. bash -x shows the kubectl commands run.
    r = runScript('bash', ['-x', DEPLOY_SCRIPT, 'tls-secret', 'minikube', 'default'], env);
    t.same(
      r.stderr.split('\n').filter((l) => l.startsWith('+ kubectl ')),
      ['+ kubectl get namespace default', '+ kubectl create namespace default'],
      'the kubectl commands run: the namespace check and its creation, not the Secret',
    );

    r = deployScript(['tls-secret', 'cloud', 'random-number'], { ...env, TLS: 'cert-manager' });
    t.equal(r.status, 0, 'cert-manager: nothing to do, succeeds');
    t.match(r.stderr, /TLS=cert-manager: no TLS Secret to write/, 'and says so');
  },
);
