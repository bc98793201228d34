import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import t from 'tap';
import { binWith, closedPort, kubeconfig, ROOT, runScript } from './helpers/kustomize.ts';

// scripts/expose-minikube.sh without a cluster: the printed steps, and every refusal before a forward
// starts. The forward itself needs a running minikube and is not exercised here.

const SCRIPT = resolve(ROOT, 'scripts/expose-minikube.sh');
const DOMAIN = 'myhome.duckdns.org';
const expose = (args: string[], env: Record<string, string | undefined>) => runScript(SCRIPT, args, env);

/** A real listener on `host`, closed at teardown; its port. */
async function listener(t: { teardown(fn: () => unknown): void }, host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  t.teardown(() => server.close());
  return (server.address() as { port: number }).port;
}

t.test(
  'the steps: router 443 to the forwarded port, DNS, an outside check, the agent with --ca-cert',
  async (t) => {
    const r = expose(['steps'], { DOMAIN });
    t.equal(r.status, 0, 'exits 0 without any cluster');
    t.match(r.stdout, /forwarded to 0\.0\.0\.0:8443/, 'default port 8443 on all interfaces');
    t.match(
      r.stdout,
      /forward TCP port 443 from the internet to \S+:8443/,
      'router: public 443 to the laptop',
    );
    t.match(r.stdout, /Host header is exactly myhome\.duckdns\.org/, 'says why 443');
    t.match(
      r.stdout,
      /Dynamic DNS: point myhome\.duckdns\.org at your home's public IP/,
      'the dynamic DNS step',
    );
    t.match(
      r.stdout,
      `curl --cacert certs/ca.crt -H 'Accept: application/json' -H "Authorization: Bearer $API_TOKEN" https://myhome.duckdns.org/`,
      'a check from outside, with the token the service requires',
    );
    t.match(
      r.stdout,
      'npm run provision-ec2 -- --service-url https://myhome.duckdns.org/ --ca-cert certs/ca.crt',
      'the exact provision-ec2 line',
    );
    t.match(r.stdout, /ends when that pod restarts/, 'says what is fragile');
    t.match(r.stdout, /For longer: `minikube tunnel`/, 'and what to use for longer');

    // A CERTS_DIR with a space: the printed commands still paste whole (as a shell splits them).
    const spaced = expose(['steps'], { DOMAIN, CERTS_DIR: '/srv/my certs' });
    const line = spaced.stdout.split('\n').find((l) => l.includes('npm run provision-ec2')) ?? '';
    t.same(
      execFileSync('sh', ['-c', `printf '%s\\n' ${line}`], { encoding: 'utf8' })
        .trimEnd()
        .split('\n')
        .slice(-2),
      ['--ca-cert', '/srv/my certs/ca.crt'],
      "CERTS_DIR with a space: --ca-cert gets the CA's path as one word",
    );
    t.match(spaced.stdout, 'curl --cacert /srv/my\\ certs/ca.crt -H', 'and so does curl --cacert');

    const custom = expose(['steps'], { DOMAIN, EXPOSE_PORT: '9443', PORT: '3000' });
    t.match(custom.stdout, /0\.0\.0\.0:9443/, 'EXPOSE_PORT chooses the port');
    t.notMatch(custom.stdout, /3000/, "the service's PORT is not mistaken for it");
  },
);

t.test('refusals are one clear line, before any kubectl', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ['steps'],
      {},
      /^expose-minikube: DOMAIN is required: .*DOMAIN=myhome\.duckdns\.org make expose-minikube/,
    ],
    [['steps'], { DOMAIN: 'https://x.example.org/' }, /is not a lower-case DNS name/],
    [
      ['steps'],
      { DOMAIN, EXPOSE_PORT: '443' },
      /EXPOSE_PORT must be a whole number from 1024 to 65535 .*got '443'/,
    ],
    [['steps'], { DOMAIN, EXPOSE_PORT: '70000' }, /got '70000'/],
    [['steps'], { DOMAIN, EXPOSE_PORT: '65536' }, /from 1024 to 65535 .*got '65536'/],
    [['steps'], { DOMAIN, EXPOSE_PORT: '1023' }, /from 1024 to 65535 .*got '1023'/],
    [['steps'], { DOMAIN, EXPOSE_PORT: 'abc' }, /got 'abc'/],
    [['forward'], { DOMAIN }, /^expose-minikube: usage: /],
    [['steps'], { DOMAIN: `${'a'.repeat(64)}.example.org` }, /labels of at most 63 characters/],
  ];
  for (const [args, env, message] of cases) {
    const r = expose(args, env);
    t.equal(r.status, 1, `${JSON.stringify(env)} ${args.join(' ')}: fails`);
    t.match(r.stderr, message, `${JSON.stringify(env)}: ${message}`);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test('EXPOSE_PORT already in use: one line before any kubectl, no retry loop', async (t) => {
  // Real listeners as another port-forward or server would hold the port: on all interfaces, on loopback.
  for (const host of ['0.0.0.0', '127.0.0.1']) {
    const port = String(await listener(t, host));
    const r = expose([], { DOMAIN, EXPOSE_PORT: port, PATH: binWith(t, ['bash', 'dirname']) });
    t.equal(r.status, 1, `held on ${host}: fails`);
    t.equal(
      r.stderr,
      `expose-minikube: EXPOSE_PORT ${port} is already in use on this machine (another port-forward or server listens on it): stop that, or choose a free port: DOMAIN=${DOMAIN} EXPOSE_PORT=<port> make expose-minikube\n`,
      `held on ${host}: one line saying what to do (before kubectl, which is not on PATH)`,
    );
    t.equal(r.stdout, '', `held on ${host}: no steps printed, no forward started`);
    t.equal(
      expose(['steps'], { DOMAIN, EXPOSE_PORT: port }).status,
      0,
      `held on ${host}: steps alone still print`,
    );
  }
});

t.test(
  'without kubectl, another context or an unreachable cluster: no forward, a clear reason',
  async (t) => {
    // A port nothing holds, so these reach the cluster checks whatever listens on 8443 here.
    const EXPOSE_PORT = String(await closedPort());
    let r = expose([], { DOMAIN, EXPOSE_PORT, PATH: binWith(t, ['bash', 'dirname']) });
    t.equal(r.status, 1, 'no kubectl: fails');
    t.match(r.stderr, /kubectl is not installed/, 'and says so');

    const PATH = binWith(t, ['bash', 'dirname', 'kubectl']);
    r = expose([], {
      DOMAIN,
      EXPOSE_PORT,
      PATH,
      KUBECONFIG: kubeconfig(t, 'https://127.0.0.1:9', 'prod-cluster'),
    });
    t.equal(r.status, 1, 'another context: fails');
    t.match(r.stderr, /current context is 'prod-cluster', not minikube profile 'minikube'/, 'names both');

    r = expose([], {
      DOMAIN,
      EXPOSE_PORT,
      PATH,
      KUBECONFIG: kubeconfig(t, `https://127.0.0.1:${await closedPort()}`),
    });
    t.equal(r.status, 1, 'cluster down: fails');
    t.match(
      r.stderr,
      /cannot read svc\/kourier in kourier-system: is minikube running with Kourier\?/,
      'says what to check',
    );
    t.notMatch(r.stdout, /port-forward/, 'no forward was started');
  },
);

t.test('the forward binds all interfaces and starts again when it ends, until a signal', async (t) => {
  // The script reaches its forward only after the cluster answers (there is none here, nor a pretend
  // one), so its two functions are cut out and run by bash -x with the script's own names, the real
  // kubectl and a cluster whose port is closed: each port-forward ends at once, as when the ingress pod
  // restarts, and the trace shows the command run each time.
  const script = readFileSync(SCRIPT, 'utf8');
  const fn = (name: string) =>
    script.match(new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}\\n`, 'm'))?.[0] ?? `${name}() { false; }\n`;
  const names = script.match(/^readonly (NAMESPACE|SERVICE)=.*$/gm) ?? [];
  t.equal(names.length, 2, "the script's namespace and service names");
  const port = await closedPort();
  const bash = spawn(
    'bash',
    [
      '-x',
      '-c',
      `set -euo pipefail\nsource scripts/lib.sh\n${names.join('\n')}\nPORT=${port} DOMAIN=${DOMAIN}\n${fn('forward')}${fn('in_background')}forward`,
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        KUBECONFIG: kubeconfig(t, `https://127.0.0.1:${await closedPort()}`),
        KUBECACHEDIR: t.testdir(),
      },
    },
  );
  t.teardown(() => bash.kill('SIGKILL'));
  const exited = once(bash, 'exit').then(([code]) => code as number | null);
  let stderr = '';
  const forwards = () => stderr.split('\n').filter((l) => /^\++ kubectl port-forward /.test(l));
  /** Whichever comes first: `event` or `ms` milliseconds (then undefined). */
  const within = <T>(event: Promise<T>, ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<undefined>((done) => {
      timer = setTimeout(() => done(undefined), ms);
    });
    return Promise.race([event, bound]).finally(() => clearTimeout(timer));
  };
  // The second forward starts 3 s after the first ended: the loop's own pause. (Or the loop ended.)
  await within(
    Promise.race([
      new Promise<void>((done) => {
        bash.stderr.on('data', (d: Buffer) => {
          stderr += d;
          if (forwards().length >= 2) done();
        });
      }),
      exited,
    ]),
    30_000,
  );
  bash.kill('SIGTERM');
  const code = await within(exited, 15_000);
  const expected = `+ kubectl port-forward --address 0.0.0.0 -n kourier-system svc/kourier ${port}:443`;
  t.ok(forwards().length >= 2, `kubectl port-forward ran again after it ended (${forwards().length} times)`);
  t.same(
    [...new Set(forwards())],
    [expected],
    "each time Kourier's svc 443 to PORT on all interfaces (--address 0.0.0.0), not only loopback",
  );
  t.match(stderr, /: the port-forward ended .*starting it again in 3 s/, 'saying it restarts');
  t.equal(code, 0, 'SIGTERM ends the loop within 15 s, and the forward returns');
  t.match(stderr, `stopped; ${DOMAIN} is no longer reachable from outside`, 'saying it stopped');
});

t.test('make expose-minikube runs the script: its refusal without DOMAIN, DOMAIN passed on', async (t) => {
  const make = (args: string[], env: Record<string, string | undefined> = {}) => {
    // stdin not a socket: otherwise make's bash thinks a remote shell started it and reads bashrc.
    const r = spawnSync('make', ['-s', 'expose-minikube', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } as NodeJS.ProcessEnv,
      timeout: 60_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  let r = make([]);
  t.equal(r.status, 2, 'no DOMAIN: make fails (2: a recipe failed)');
  t.match(
    r.stderr,
    /^expose-minikube: DOMAIN is required: the public name the agent calls, e.g\. DOMAIN=myhome\.duckdns\.org make expose-minikube\n/,
    "with the script's own line first",
  );
  t.match(
    r.stderr,
    /\[Makefile:\d+: expose-minikube\] Error 1\n$/,
    'and make reports that the script exited 1',
  );
  t.equal(r.stdout, '', 'no steps printed');

  // DOMAIN on make's line reaches the script: it gets past that check to the next one (no kubectl).
  r = make([`DOMAIN=${DOMAIN}`], {
    PATH: binWith(t, ['bash', 'dirname', 'make']),
    EXPOSE_PORT: String(await closedPort()),
  });
  t.equal(r.status, 2, 'DOMAIN given, no kubectl: make fails');
  t.match(
    r.stderr,
    /^expose-minikube: kubectl is not installed/,
    'at the kubectl check, after DOMAIN was accepted',
  );
});
