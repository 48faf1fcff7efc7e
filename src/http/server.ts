import { once } from 'node:events';
import { existsSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type HttpDeps } from './app.ts';

/** The head node's HTTP listener. `stop()` lets in-flight requests finish, then closes. */
export class HttpServer {
  private server: Server | null = null;
  /** The same app on `http.unixSocket`, when configured. */
  private unixServer: Server | null = null;

  constructor(private readonly deps: HttpDeps) {}

  async start(): Promise<AddressInfo> {
    const app = createApp(this.deps);
    const http = this.deps.config.http;
    // Node's defaults (headersTimeout 60 s, checked every 30 s) let a client that trickles its
    // headers hold a connection for over a minute: bound both, and check every second
    // (node:http createServer options headersTimeout, requestTimeout, connectionsCheckingInterval).
    // A head past maxHeaderSize gets 431 (RFC 6585 §5) from Node's parser.
    const make = (): Server => {
      const server = createServer(
        {
          headersTimeout: http.headersTimeoutSeconds * 1000,
          requestTimeout: http.requestTimeoutSeconds * 1000,
          connectionsCheckingInterval: 1000,
          maxHeaderSize: http.maxHeaderBytes,
        },
        app,
      );
      // iPXE and firmware keep connections alive between kernel and module fetches.
      server.keepAliveTimeout = 15_000;
      return server;
    };
    const server = make();
    server.listen(http.port, http.listen);
    this.server = server;
    await once(server, 'listening');
    const addr = server.address() as AddressInfo;
    this.deps.log.info({ event: 'http_listen', address: addr.address, port: addr.port }, 'HTTP listening');
    if (http.unixSocket) {
      // A socket file left by a head node that was killed would make listen() fail (EADDRINUSE).
      if (existsSync(http.unixSocket) && statSync(http.unixSocket).isSocket()) unlinkSync(http.unixSocket);
      const unix = make();
      unix.listen(http.unixSocket);
      this.unixServer = unix;
      await once(unix, 'listening');
      this.deps.log.info({ event: 'http_listen', socket: http.unixSocket }, 'HTTP listening on a unix socket');
    }
    return addr;
  }

  address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null) ?? null;
  }

  /**
   * Stops accepting, waits for in-flight requests (at most `graceMs`, default
   * http.stopGraceSeconds), then closes every connection: a download the client stopped
   * reading is cut there rather than holding the shutdown until the client hangs up.
   */
  async stop(graceMs = this.deps.config.http.stopGraceSeconds * 1000): Promise<void> {
    const servers = [this.server, this.unixServer].filter((s): s is Server => s !== null);
    this.server = null;
    this.unixServer = null;
    await Promise.all(
      servers.map(async (server) => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        await closed;
        clearTimeout(timer);
      }),
    );
  }
}
