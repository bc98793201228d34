import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './net.ts';
import { type Started, startProcess, type Teardown } from './process.ts';

export const NGINX = '/usr/sbin/nginx';

export interface Nginx extends Started {
  port: number;
}

/** The nginx configuration for one TLS server on 127.0.0.1:`port` in front of `upstreamPort`. */
export function nginxConfig(options: {
  dir: string;
  port: number;
  serverName: string;
  cert: string;
  key: string;
  upstreamPort: number;
}): string {
  const { dir } = options;
  return `daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  server {
    listen 127.0.0.1:${options.port} ssl;
    server_name ${options.serverName};
    ssl_certificate ${options.cert};
    ssl_certificate_key ${options.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://127.0.0.1:${options.upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
    }
  }
}
`;
}

/**
 * nginx from Debian's package, as the original design had, terminating TLS with `cert` on a free
 * loopback port in front of the service; stopped when the test ends. Resolves once it accepts connections.
 */
export async function startNginx(
  t: Teardown,
  options: { dir: string; serverName: string; cert: string; key: string; upstreamPort: number },
): Promise<Nginx> {
  mkdirSync(options.dir, { recursive: true });
  const port = await freePort();
  const conf = join(options.dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig({ ...options, port }));
  const started = startProcess(t, NGINX, ['-e', 'stderr', '-p', options.dir, '-c', conf]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (started.child.exitCode !== null) {
      throw new Error(`nginx exited (${started.child.exitCode}): ${started.stderr.join('\n')}`);
    }
    if (await accepts(port)) break;
    if (Date.now() > deadline)
      throw new Error(`nginx did not listen on ${port}: ${started.stderr.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Object.assign(started, { port });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A maker of nginx instances in front of the service on `upstreamPort`, each presenting its own
 * certificate for `serverName`, each in its own folder under `root`.
 */
export function nginxFront(t: Teardown, root: string, serverName: string, upstreamPort: number) {
  return (name: string, cert: string, key: string) =>
    startNginx(t, { dir: join(root, `nginx-${name}`), serverName, cert, key, upstreamPort });
}
