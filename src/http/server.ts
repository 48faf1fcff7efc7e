import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type HttpDeps } from './app.ts';

/** The head node's HTTP listener. `stop()` lets in-flight requests finish, then closes. */
export class HttpServer {
  private server: Server | null = null;

  constructor(private readonly deps: HttpDeps) {}

  async start(): Promise<AddressInfo> {
    const app = createApp(this.deps);
    const server = app.listen(this.deps.config.http.port, this.deps.config.http.listen);
    // iPXE and firmware keep connections alive between kernel and module fetches.
    server.keepAliveTimeout = 15_000;
    this.server = server;
    await once(server, 'listening');
    const addr = server.address() as AddressInfo;
    this.deps.log.info({ event: 'http_listen', address: addr.address, port: addr.port }, 'HTTP listening');
    return addr;
  }

  address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null) ?? null;
  }

  /** Stops accepting, waits for in-flight requests (at most `graceMs`), then drops idle keep-alives. */
  async stop(graceMs = 10_000): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
  }
}
