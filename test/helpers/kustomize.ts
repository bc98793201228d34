import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClusterDomainClaim } from '@kubernetes-models/knative/networking.internal.knative.dev/v1alpha1/ClusterDomainClaim';
import { Service } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { DomainMapping } from '@kubernetes-models/knative/serving.knative.dev/v1beta1/DomainMapping';
import { Ajv, type ValidateFunction } from 'ajv';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { parse, parseAllDocuments } from 'yaml';
import { freePort } from './net.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const DEPLOY_SCRIPT = resolve(ROOT, 'scripts/deploy-knative.sh');

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are untyped YAML
export type Manifest = Record<string, any>;

/** `kubectl kustomize <dir>` parsed into objects. */
export function kustomize(dir: string): Manifest[] {
  return parseManifests(execFileSync('kubectl', ['kustomize', resolve(ROOT, dir)], { encoding: 'utf8' }));
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
}

const scriptOptions = (env: Record<string, string | undefined>) => ({
  // stdin not a socket: otherwise bash thinks a remote shell started it and reads ~/.bashrc.
  stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'],
  cwd: ROOT,
  env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } as NodeJS.ProcessEnv,
  timeout: 60_000,
});

/** Runs one of our scripts with exactly the given environment (PATH and HOME default to ours). */
export function runScript(script: string, args: string[], env: Record<string, string | undefined> = {}) {
  const r = spawnSync(script, args, { ...scriptOptions(env), encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs scripts/deploy-knative.sh (see runScript). */
export const deployScript = (args: string[], env: Record<string, string | undefined> = {}) =>
  runScript(DEPLOY_SCRIPT, args, env);

/**
 * A kubeconfig file, removed at teardown: one cluster at `server`, current context `context`; without a
 * server, an empty file (kubectl has no current context).
 */
export function kubeconfig(
  t: { teardown(fn: () => unknown): void },
  server?: string,
  context = 'minikube',
): string {
  const dir = mkdtempSync(join(tmpdir(), 'rn-kube-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config');
  writeFileSync(
    file,
    server === undefined
      ? ''
      : `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${server}"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: ${context}, context: {cluster: c, user: u}}]
current-context: ${context}
`,
  );
  return file;
}

/** A loopback port nothing listens on: kubectl's requests to it are refused at once. */
export const closedPort = freePort;

/** A bin folder with only the named tools (symlinks to the real ones), for a PATH that lacks the rest. */
export function binWith(t: { teardown(fn: () => unknown): void }, tools: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'rn-bin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const tool of tools) {
    const real = execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    symlinkSync(real, join(dir, tool));
  }
  return dir;
}

export const find = (objs: Manifest[], kind: string) => objs.filter((o) => o.kind === kind);

export function ksvc(objs: Manifest[]): Manifest {
  const found = objs.filter((o) => o.kind === 'Service' && o.apiVersion === 'serving.knative.dev/v1');
  if (found.length !== 1) throw new Error(`expected one Knative Service, found ${found.length}`);
  return found[0] as Manifest;
}

/**
 * A CRD's openAPIV3Schema made as strict as the API server's field validation: an object schema
 * with properties accepts no other field unless it says x-kubernetes-preserve-unknown-fields.
 */
function strict(schema: Manifest): Manifest {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Manifest = {};
  for (const [k, v] of Object.entries(schema)) out[k] = strict(v);
  if (
    out.properties &&
    out.additionalProperties === undefined &&
    !out['x-kubernetes-preserve-unknown-fields']
  ) {
    out.additionalProperties = false;
  }
  return out;
}

const crdValidators = new Map<string, ValidateFunction>();
/** Validators keyed by `apiVersion/kind` from the Knative CRDs copied into test/fixtures. */
function crdValidator(apiVersion: string, kind: string): ValidateFunction | undefined {
  if (crdValidators.size === 0) {
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    for (const file of ['service.yaml', 'domain-mapping.yaml']) {
      const crd = parse(
        readFileSync(resolve(ROOT, 'test/fixtures/knative-serving', file), 'utf8'),
      ) as Manifest;
      for (const version of crd.spec.versions) {
        const key = `${crd.spec.group}/${version.name}/${crd.spec.names.kind}`;
        crdValidators.set(key, ajv.compile(strict(version.schema.openAPIV3Schema)));
      }
    }
  }
  return crdValidators.get(`${apiVersion}/${kind}`);
}

/** The kubernetes-models class of each kind we ship, by apiVersion/kind. */
const MODELS: Record<string, new (obj: Manifest) => { validate(): void }> = {
  'serving.knative.dev/v1/Service': Service,
  'serving.knative.dev/v1beta1/DomainMapping': DomainMapping,
  'networking.internal.knative.dev/v1alpha1/ClusterDomainClaim': ClusterDomainClaim,
  'v1/Namespace': Namespace,
};

/** Throws with every problem when `obj` breaks its model's schema or its CRD's schema. */
export function validateManifest(obj: Manifest): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const name: string | undefined = obj.metadata?.name;
  const Model = MODELS[key];
  if (!Model) throw new Error(`no schema known for ${key}: add one before shipping this kind`);
  new Model(obj).validate();
  const crd = crdValidator(obj.apiVersion, obj.kind);
  if (crd && !crd(obj)) {
    const errors = (crd.errors ?? []).map(
      (e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`,
    );
    throw new Error(`${key} ${name} breaks the CRD schema:\n${errors.join('\n')}`);
  }
}
