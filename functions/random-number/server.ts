import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { runMain } from '../../lib/cli.ts';
import { createLogger } from '../../lib/logger.ts';
import { createApp } from './app.ts';
import { loadConfig } from './config.ts';
import { createListener } from './node-listener.ts';

// Required, not imported: on Node 22 an ESM import of node:http builds its namespace, which reads the
// module's lazy fetch-related exports and so loads undici (10 ms or more of start-up, measured).
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

/** The only place that listens and handles signals; everything it serves comes from createApp. */
runMain('random-number', () => {
  const config = loadConfig();
  // A line per request: buffered, flushed every 100 ms and at exit (lib/logger.ts says what a crash loses).
  const logger = createLogger({ name: 'random-number', level: config.logLevel, bufferBytes: 4096 });
  let shuttingDown = false;
  const app = createApp({ logger, apiToken: config.apiToken, isShuttingDown: () => shuttingDown });
  const log = logger.child({ module: 'server' });
  // Node's server timeouts, set on purpose rather than left to defaults:
  // - headersTimeout 20 s: a client that trickles its headers (slowloris) is cut off well before it can
  //   pin a socket; honest clients, including Knative's queue-proxy over loopback, send them in microseconds.
  // - requestTimeout 30 s: no request here has a body or takes real work; 30 s bounds any stuck one.
  // - keepAliveTimeout 65 s: longer than the idle timeouts of the proxies in front (60 s on common load
  //   balancers), so the proxy, not us, closes an idle connection and never reuses one we just closed.
  // - maxHeaderSize stays Node's 16 KiB: a larger header block gets 431.
  const server = createServer(
    { headersTimeout: 20_000, requestTimeout: 30_000, keepAliveTimeout: 65_000 },
    createListener(app.fetch, {
      logger: logger.child({ module: 'http' }),
      onError: (err, reqId) => log.error({ err, reqId }, 'response failed'),
    }),
  );

  server.on('error', (err) => {
    log.fatal({ err }, 'server error');
    process.exit(1);
  });
  server.listen(config.port, config.host, () => {
    const { address, port } = server.address() as AddressInfo;
    log.info({ address, port, auth: config.apiToken ? 'bearer' : 'none' }, 'listening');
    // Not left in the buffer: whoever waits for this line (a test, a person) sees it now.
    logger.flush();
  });

  const shutdown = (signal: NodeJS.Signals) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: draining connections');
    // close() stops accepting and drops idle keep-alive sockets; sockets still busy become idle when
    // their response ends, so keep sweeping until the last one is gone.
    server.close(() => {
      clearInterval(sweep);
      log.info('shutdown complete');
      process.exit(0);
    });
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    // Past the budget the remaining connections are cut. The exit is still 0: the stop was asked
    // for and has happened; the warn line is the record that some requests did not finish.
    setTimeout(() => {
      log.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out: closing remaining connections');
      server.closeAllConnections();
      process.exit(0);
    }, config.shutdownTimeoutMs).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
});
