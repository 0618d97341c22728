import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** Result of one check. */
export interface CheckResult {
  ok: boolean;
  /** Reason the check failed, safe to show. */
  detail?: string;
}

/** Body of `/healthz` and `/readyz`. */
export interface HealthReport {
  status: 'ok' | 'unavailable';
  checks: Record<string, CheckResult>;
}

export interface HealthServerOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  host: string;
  /** Registry that `/metrics` serves. */
  registry: Registry;
  /** Checks of `/healthz`: is the process able to work. */
  liveness: () => Promise<Record<string, CheckResult>>;
  /** Checks of `/readyz`: has the process finished starting. */
  readiness: () => Promise<Record<string, CheckResult>>;
  logger: Logger;
}

/** A listening health and metrics server. */
export interface HealthServer {
  /** `http://host:port`, with the port that the server got. */
  readonly url: string;
  /** Stops accepting connections and closes idle keep-alive ones; requests in flight finish. */
  stopAccepting(): void;
  /** Resolves once every connection has closed; cuts off those still open after `graceMs`. */
  closed(graceMs: number): Promise<void>;
}

/** Starts the HTTP server of `/healthz`, `/readyz` and `/metrics`. */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server = createServer((request, response) => {
    handleRequest(options, request, response).catch((err: unknown) => {
      options.logger.error({ err, url: request.url }, 'health request failed');
      if (!response.headersSent) {
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      }
      response.end('internal error\n');
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  options.logger.info({ url }, 'health server listening');

  const serverClosed = new Promise<void>((resolve) => server.once('close', resolve));
  return {
    url,
    stopAccepting: () => {
      server.close();
      server.closeIdleConnections();
    },
    closed: (graceMs) => closeWithin(server, serverClosed, graceMs),
  };
}

async function handleRequest(
  options: HealthServerOptions,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  const routes: Record<string, () => Promise<void>> = {
    '/healthz': () => sendReport(response, options.liveness),
    '/readyz': () => sendReport(response, options.readiness),
    '/metrics': () => sendMetrics(response, options.registry),
  };
  const route = routes[path];

  if (route === undefined) {
    sendText(response, 404, 'not found: try /healthz, /readyz or /metrics\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    sendText(response, 405, 'method not allowed\n');
    return;
  }
  await route();
}

async function sendReport(
  response: ServerResponse,
  runChecks: () => Promise<Record<string, CheckResult>>,
): Promise<void> {
  const checks = await runChecks();
  const ok = Object.values(checks).every((check) => check.ok);
  const report: HealthReport = { status: ok ? 'ok' : 'unavailable', checks };
  response.writeHead(ok ? 200 : 503, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  });
  response.end(`${JSON.stringify(report)}\n`);
}

async function sendMetrics(response: ServerResponse, registry: Registry): Promise<void> {
  const body = await registry.metrics();
  response.writeHead(200, { 'content-type': registry.contentType });
  response.end(body);
}

function sendText(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  response.end(body);
}

async function closeWithin(
  server: Server,
  serverClosed: Promise<void>,
  graceMs: number,
): Promise<void> {
  server.close();
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  timer.unref();
  try {
    await serverClosed;
  } finally {
    clearTimeout(timer);
  }
}
