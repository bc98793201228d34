import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runMain } from '../../lib/cli.ts';
import { ConfigError, TransientError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/logger.ts';
import { createApp } from './app.ts';
import { emptyTokenWarning, loadConfig } from './config.ts';
import { createHttpServer } from './http-server.ts';

/** Binds, or fails with one line that says why and what to do (runMain prints it, no stack). */
async function listen(server: Server, port: number, host: string | undefined): Promise<void> {
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'EADDRINUSE') {
      throw new TransientError(
        `PORT ${port} is in use: another process listens there; stop it or set PORT to a free port`,
      );
    }
    if (code === 'EACCES') {
      throw new ConfigError(`PORT ${port} needs privileges to bind (${code}): set PORT to 1024 or above`);
    }
    // EADDRNOTAVAIL (an address of no interface here), ENOTFOUND (a name that does not resolve), ...
    throw new ConfigError(
      `HOST ${host} cannot be bound (${code ?? message}): set HOST to an address of this machine, or unset it to listen on every interface`,
    );
  }
}

/** The only place that listens and handles signals; everything it serves comes from createApp. */
runMain('random-number', async () => {
  const config = loadConfig();
  // A line per request: buffered, flushed every 100 ms and at exit (lib/logger.ts says what a crash loses).
  const logger = createLogger({ name: 'random-number', level: config.logLevel, bufferBytes: 4096 });
  let shuttingDown = false;
  const app = createApp({ logger, apiToken: config.apiToken, isShuttingDown: () => shuttingDown });
  const log = logger.child({ module: 'server' });
  const server = createHttpServer(app);

  await listen(server, config.port, config.host);
  const { address, port } = server.address() as AddressInfo;
  const warning = emptyTokenWarning();
  if (warning) log.warn(warning);
  log.info({ address, port, auth: config.apiToken ? 'bearer' : 'none' }, 'listening');
  // Not left in the buffer: whoever waits for this line (a test, a person) sees it now.
  logger.flush();

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
