import { readFileSync } from 'node:fs';
import { createServer as createPlainServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { fileLines, LINE, startAgent } from './helpers/agent.ts';
import { json } from './helpers/process.ts';
import { selfSigned } from './helpers/tls.ts';

/** A self-signed CA certificate for 127.0.0.1 and its key, in `dir`. */
function certFor127(dir: string) {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const extra = ['-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:TRUE'];
  selfSigned({ cert, key, subject: '/CN=random-number test', extra });
  return { key, cert };
}

/** Listens on 127.0.0.1, port 0, until the test ends; its URL. */
async function listen(t: Test, server: HttpServer | HttpsServer, scheme: 'http' | 'https'): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

t.test('https with a self-signed certificate: trusted only when its CA is given', async (t) => {
  const dir = t.testdir();
  const { key, cert } = certFor127(dir);
  // Answers like the service does, over TLS.
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    const json = (req.headers.accept ?? '').includes('application/json');
    res.setHeader('content-type', json ? 'application/json' : 'text/plain; charset=utf-8');
    res.end(json ? '{"number":64,"coldStart":false}' : '64\n');
  });
  const url = await listen(t, server, 'https');

  const untrusted = join(dir, 'untrusted.txt');
  const without = startAgent(t, { SERVICE_URL: url, SCHEDULE: '*/1 * * * * *', OUTPUT_FILE: untrusted });
  const failed = await without.waitForPoll();
  t.match(
    failed,
    {
      outcome: 'failed',
      attempts: 1,
      reason:
        /^TLS: the service's certificate is not signed by a CA the agent trusts; .*--ca-cert .*SERVICE_CA_FILE=<PEM file> outside EC2/,
    },
    'without the CA: a failed poll naming TLS and the fix, not retried',
  );
  without.kill();
  await without.exited;
  t.same(await fileLines(untrusted), [], 'without the CA: nothing written');

  const trusted = join(dir, 'trusted.txt');
  const withCa = startAgent(t, {
    SERVICE_URL: url,
    SCHEDULE: '*/1 * * * * *',
    OUTPUT_FILE: trusted,
    SERVICE_CA_FILE: cert,
  });
  t.match(await withCa.waitForPoll(), { outcome: 'ok', number: 64 }, 'with SERVICE_CA_FILE: ok');
  t.match(json(withCa.stdout[0] ?? ''), { msg: 'started', serviceCaFile: cert }, 'the start line names it');
  withCa.kill();
  await withCa.exited;
  // A CA given to Node as a whole, the way before SERVICE_CA_FILE: still trusted, with a warning.
  const nodeWide = startAgent(t, {
    SERVICE_URL: url,
    SCHEDULE: '*/1 * * * * *',
    OUTPUT_FILE: join(dir, 'node-wide.txt'),
    NODE_EXTRA_CA_CERTS: cert,
  });
  t.match(await nodeWide.waitForPoll(), { outcome: 'ok', number: 64 }, 'with NODE_EXTRA_CA_CERTS: ok');
  const warned = nodeWide.stdout.map(json).some((l) => /^NODE_EXTRA_CA_CERTS is set/.test(String(l.msg)));
  t.ok(warned, 'and a warning that it reaches the AWS calls too');
  nodeWide.kill();
  await nodeWide.exited;
  const lines = await fileLines(trusted);
  t.ok(
    lines.length >= 1 && lines.every((l) => LINE.test(l) && l.endsWith(' 64')),
    'with the CA: the number is written',
  );
});

t.test(
  'https:// to a port that answers in plain HTTP: a TLS reason naming the fix, not retried',
  async (t) => {
    const plain = await listen(
      t,
      createPlainServer((_req, res) => res.end('64\n')),
      'http',
    );
    const url = plain.replace(/^http:/, 'https:');
    const output = join(t.testdir(), 'numbers.txt');
    const agent = startAgent(t, { SERVICE_URL: url, SCHEDULE: '*/1 * * * * *', OUTPUT_FILE: output });
    t.match(
      await agent.waitForPoll(),
      {
        outcome: 'failed',
        attempts: 1,
        reason:
          /^TLS: what answers at SERVICE_URL's port does not speak TLS: .*http:\/\/ URL \(ERR_SSL_WRONG_VERSION_NUMBER\)$/,
      },
      'says the port is not TLS and what to give instead; another attempt could not help',
    );
    agent.kill();
    await agent.exited;
    t.same(await fileLines(output), [], 'nothing written');
  },
);

t.test('https:// that redirects to http://: not followed, nothing written', async (t) => {
  const dir = t.testdir();
  const { key, cert } = certFor127(dir);
  let asked = 0;
  const plain = createPlainServer((_req, res) => {
    asked += 1;
    res.end('8\n');
  });
  const cleartext = await listen(t, plain, 'http');
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
    res.writeHead(302, { location: cleartext }).end();
  });
  const url = await listen(t, server, 'https');
  const output = join(dir, 'numbers.txt');
  const agent = startAgent(t, {
    SERVICE_URL: url,
    SCHEDULE: '*/1 * * * * *',
    OUTPUT_FILE: output,
    SERVICE_CA_FILE: cert,
  });
  t.match(
    await agent.waitForPoll(),
    {
      outcome: 'failed',
      attempts: 1,
      reason: `HTTP 302 (a redirect to "${cleartext}": set SERVICE_URL to where the service answers)`,
    },
    'the redirect is the reason, with where it points',
  );
  agent.kill();
  await agent.exited;
  t.equal(asked, 0, 'the cleartext server was never asked');
  t.same(await fileLines(output), [], 'nothing written');
});
