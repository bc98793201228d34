import cronParser from 'cron-parser';
import t from 'tap';
import { loadConfig } from '../functions/random-number/config.ts';
import { createHttpServer } from '../functions/random-number/http-server.ts';
import { AGENT_DEFAULTS as AGENT } from '../lib/contract.ts';
import { ksvc, kustomize, type Manifest } from './helpers/kustomize.ts';
import { startService } from './helpers/service.ts';

// The manifests against the app they run: ports, probes, timeouts and the agent's poll rhythm.
const overlays: Record<string, Manifest> = {
  base: ksvc(kustomize('kustomize/base')),
  minikube: ksvc(kustomize('kustomize/overlays/minikube')),
  cloud: ksvc(kustomize('kustomize/overlays/cloud')),
};
const container = (svc: Manifest): Manifest => svc.spec.template.spec.containers[0];

/** Knative durations as used here: "90s", "2m", "1m30s". */
function seconds(duration: string): number {
  const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(duration);
  if (!m || duration === '') throw new Error(`unexpected duration ${duration}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
}

t.test('the container port is the port the service listens on by default', async (t) => {
  const defaults = loadConfig({});
  for (const [name, svc] of Object.entries(overlays)) {
    const c = container(svc);
    t.same(
      c.ports,
      [{ name: 'http1', containerPort: defaults.port }],
      `${name}: one port, http1, = default PORT`,
    );
    t.notOk(
      c.env.some((e: Manifest) => e.name === 'PORT'),
      `${name}: PORT is left to Knative (it reserves the variable)`,
    );
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      t.notOk(
        c[probe].httpGet.port,
        `${name}: ${probe} has no port of its own (Knative uses the serving port)`,
      );
    }
  }
});

t.test('the environment in the manifests is one the service accepts', async (t) => {
  for (const [name, svc] of Object.entries(overlays)) {
    const env = Object.fromEntries(
      container(svc)
        .env.filter((e: Manifest) => 'value' in e)
        .map((e: Manifest) => [e.name, e.value]),
    );
    const config = loadConfig(env);
    t.equal(config.logLevel, env.LOG_LEVEL, `${name}: LOG_LEVEL is a level the service knows`);
    // Knative makes timeoutSeconds the pod's terminationGracePeriodSeconds: the app's own drain
    // must end before the kubelet's SIGKILL.
    t.ok(
      config.shutdownTimeoutMs < svc.spec.template.spec.timeoutSeconds * 1000,
      `${name}: SHUTDOWN_TIMEOUT_MS (${config.shutdownTimeoutMs}) < timeoutSeconds (${svc.spec.template.spec.timeoutSeconds} s)`,
    );
  }
});

t.test('a pod survives between the agent polls, and a cold start fits in the request timeout', async (t) => {
  const times = cronParser.parseExpression(AGENT.schedule, { currentDate: new Date('2026-01-01T00:00:30Z') });
  const pollSeconds = (times.next().getTime() - times.prev().getTime()) / 1000;
  t.equal(pollSeconds, 60, "the agent's default schedule polls once a minute");
  // The server as server.ts builds it: Node's requestTimeout on it is the app's bound on one request.
  const appRequestTimeoutMs = createHttpServer({ fetch: () => new Response('') }).requestTimeout;
  t.ok(appRequestTimeoutMs > 0, `the service bounds a request (${appRequestTimeoutMs} ms)`);
  for (const [name, svc] of Object.entries(overlays)) {
    const a = svc.spec.template.metadata.annotations;
    const window = seconds(a['autoscaling.knative.dev/window']);
    const retention = seconds(a['autoscaling.knative.dev/scale-to-zero-pod-retention-period']);
    // The last pod goes `window` (no traffic seen) + `retention` after the last request.
    t.ok(
      window + retention >= pollSeconds * 1.5,
      `${name}: the last pod lives ${window + retention} s after a request, well past the next poll at ${pollSeconds} s`,
    );
    t.equal(
      svc.spec.template.spec.timeoutSeconds * 1000,
      appRequestTimeoutMs,
      `${name}: timeoutSeconds is the service's own request timeout (${appRequestTimeoutMs} ms)`,
    );
    t.ok(
      AGENT.requestTimeoutMs <= svc.spec.template.spec.timeoutSeconds * 1000,
      `${name}: Knative keeps a request (cold start included) at least as long as the agent waits`,
    );
  }
});

t.test('the probe paths are ones the built service answers 200 to', async (t) => {
  for (const [name, svc] of Object.entries(overlays)) {
    // Readiness is the path that turns 503 while the service drains; liveness must not (a restart).
    t.equal(container(svc).readinessProbe.httpGet.path, '/readyz', `${name}: readiness probes /readyz`);
    t.equal(container(svc).livenessProbe.httpGet.path, '/healthz', `${name}: liveness probes /healthz`);
  }
  const service = await startService(t);
  for (const [name, svc] of Object.entries(overlays)) {
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      const path: string = container(svc)[probe].httpGet.path;
      const res = await fetch(`${service.url}${path}`);
      await res.body?.cancel();
      t.equal(res.status, 200, `${name}: ${probe} GET ${path} answers 200`);
    }
  }
});
