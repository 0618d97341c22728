import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Logger, pino } from 'pino';
import { ADMIN_PATH_PREFIX, handleAdminRequest } from './admin.js';
import { FaultController, type MockOAuthFaults } from './faults.js';
import { sendJson } from './http-io.js';
import { type MockOAuthServerOptions, resolveOptions, validateExpiresIn } from './options.js';
import { handleResourceRequest } from './resource.js';
import {
  handleTokenRequest,
  type MockOAuthCounts,
  type TokenEndpointContext,
} from './token-endpoint.js';
import { type IssuedTokenInfo, TokenStore } from './token-store.js';

/** Path of the token endpoint, as on the Quiqup Platform API. */
export const TOKEN_PATH = '/oauth/token';
/** Path of the protected resource. */
export const RESOURCE_PATH = '/api/orders';

/** A running mock token endpoint and protected resource. Create one with {@link startMockOAuthServer}. */
export interface MockOAuthServer {
  /** Base URL without a trailing slash, such as `http://127.0.0.1:41234`. */
  readonly url: string;
  /** URL of `POST /oauth/token`. */
  readonly tokenUrl: string;
  /** URL of the protected resource `/api/orders`. */
  readonly resourceUrl: string;
  /** TCP port the server listens on. */
  readonly port: number;
  /** Lifetime of newly issued tokens, in seconds. */
  readonly expiresIn: number;
  /** Returns a copy of the request counters. */
  counts(): MockOAuthCounts;
  /** Sets every request counter to 0. */
  resetCounts(): void;
  /** Returns every token issued so far, oldest first, as SHA-256 hashes with their state. */
  issuedTokens(): IssuedTokenInfo[];
  /** Returns whether the resource accepts `token` now: issued here, not revoked, not expired. */
  isTokenActive(token: string): boolean;
  /** Revokes one token, so the resource rejects it. Returns whether it was active. */
  revokeToken(token: string): boolean;
  /** Revokes every issued token. Returns how many were active. */
  revokeTokens(): number;
  /** Replaces every fault; throws `TypeError` (code `ERR_INVALID_ARG_*`) on an invalid one. */
  setFaults(faults: MockOAuthFaults): void;
  /** Removes every fault. */
  clearFaults(): void;
  /** Returns the faults in force, with `times` set to the token requests still to fault. */
  currentFaults(): MockOAuthFaults;
  /** Sets the lifetime of tokens issued from now on, in seconds (fractions allowed, 0 or more). */
  setExpiresIn(seconds: number): void;
  /** Stops listening and destroys every open connection, hanging requests included. */
  close(): Promise<void>;
}

/**
 * Starts a Quiqup-compatible token endpoint (`POST /oauth/token`), a protected resource
 * (`/api/orders`) and the admin endpoints under `/__`. Resolves once the server listens.
 */
export async function startMockOAuthServer(
  options?: MockOAuthServerOptions,
): Promise<MockOAuthServer> {
  const resolved = resolveOptions(options);
  const logger = (resolved.logger ?? pino({ enabled: false })).child({ component: 'mock-oauth' });
  const server = new HttpMockOAuthServer(resolved.clients, resolved.expiresInSeconds, logger);

  await server.listen(resolved.port, resolved.host);
  logger.info(
    { url: server.url, expiresIn: resolved.expiresInSeconds },
    'mock oauth server started',
  );
  return server;
}

class HttpMockOAuthServer implements MockOAuthServer {
  url = '';
  tokenUrl = '';
  resourceUrl = '';
  port = 0;

  private expiresInSeconds: number;
  private readonly logger: Logger;
  private readonly store = new TokenStore();
  private readonly faults = new FaultController();
  private readonly requestCounts: MockOAuthCounts = zeroCounts();
  private readonly httpServer: Server;
  private readonly sockets = new Set<Socket>();
  /** Pending `latencyMs` waits; close() ends them at once. */
  private readonly delays = new Map<NodeJS.Timeout, () => void>();
  private readonly context: TokenEndpointContext;
  private closing: Promise<void> | undefined;

  constructor(
    clients: readonly { clientId: string; clientSecret: string }[],
    expiresInSeconds: number,
    logger: Logger,
  ) {
    this.expiresInSeconds = expiresInSeconds;
    this.logger = logger;
    this.context = {
      store: this.store,
      faults: this.faults,
      counts: this.requestCounts,
      clients: new Map(clients.map((client) => [client.clientId, client.clientSecret])),
      logger,
      expiresInSeconds: () => this.expiresInSeconds,
      delay: (ms) => this.delay(ms),
    };

    this.httpServer = createServer((request, response) => this.route(request, response));
    this.httpServer.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  get expiresIn(): number {
    return this.expiresInSeconds;
  }

  listen(port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.httpServer.once('error', reject);
      this.httpServer.listen(port, host, () => {
        this.httpServer.off('error', reject);
        const address = this.httpServer.address() as AddressInfo;
        const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        this.port = address.port;
        this.url = `http://${urlHost}:${address.port}`;
        this.tokenUrl = `${this.url}${TOKEN_PATH}`;
        this.resourceUrl = `${this.url}${RESOURCE_PATH}`;
        resolve();
      });
    });
  }

  counts(): MockOAuthCounts {
    return { ...this.requestCounts };
  }

  resetCounts(): void {
    Object.assign(this.requestCounts, zeroCounts());
  }

  issuedTokens(): IssuedTokenInfo[] {
    return this.store.list();
  }

  isTokenActive(token: string): boolean {
    return this.store.isActive(token);
  }

  revokeToken(token: string): boolean {
    const wasActive = this.store.revoke(token);
    this.logger.info({ wasActive }, 'token revoked');
    return wasActive;
  }

  revokeTokens(): number {
    const revoked = this.store.revokeAll();
    this.logger.info({ revoked }, 'tokens revoked');
    return revoked;
  }

  setFaults(faults: MockOAuthFaults): void {
    this.faults.set(faults);
    // Names only: a `body` fault may hold anything, secrets included.
    const current = this.faults.current();
    const names = [...Object.keys(current).filter((name) => name !== 'resource')];
    for (const name of Object.keys(current.resource ?? {})) {
      names.push(`resource.${name}`);
    }
    this.logger.info({ faults: names }, 'faults set');
  }

  clearFaults(): void {
    this.faults.clear();
    this.logger.info('faults cleared');
  }

  currentFaults(): MockOAuthFaults {
    return this.faults.current();
  }

  setExpiresIn(seconds: number): void {
    this.expiresInSeconds = validateExpiresIn(seconds, 'seconds');
    this.logger.info({ expiresIn: seconds }, 'token lifetime set');
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve, reject) => {
      for (const [timer, wake] of this.delays) {
        clearTimeout(timer);
        wake();
      }
      this.delays.clear();

      this.httpServer.close((error) => {
        if (error) {
          reject(error);
          return;
        }
        this.logger.info({ url: this.url }, 'mock oauth server closed');
        resolve();
      });
      // server.close() waits for open connections, and `noAnswer` requests never end on their own.
      for (const socket of this.sockets) {
        socket.destroy();
      }
    });
    return this.closing;
  }

  private route(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?')[0] ?? '/';

    if (path === TOKEN_PATH) {
      handleTokenRequest(this.context, request, response).catch((error: unknown) =>
        this.failRequest(error, path, response),
      );
      return;
    }
    if (path === RESOURCE_PATH) {
      handleResourceRequest(this.context, request, response);
      return;
    }
    if (path.startsWith(ADMIN_PATH_PREFIX)) {
      handleAdminRequest(this, request, response, path).catch((error: unknown) =>
        this.failRequest(error, path, response),
      );
      return;
    }
    sendJson(response, 404, { error: 'not_found', error_description: `no endpoint ${path}` });
  }

  private failRequest(error: unknown, path: string, response: ServerResponse): void {
    this.logger.error({ err: error, path }, 'request handler failed');
    sendJson(response, 500, { error: 'server_error', error_description: 'request handler failed' });
  }

  private delay(ms: number): Promise<boolean> {
    if (this.closing !== undefined) {
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.delays.delete(timer);
        resolve(true);
      }, ms);
      this.delays.set(timer, () => resolve(false));
    });
  }
}

function zeroCounts(): MockOAuthCounts {
  return {
    tokenRequests: 0,
    tokenSuccesses: 0,
    resourceRequests: 0,
    resourceOk: 0,
    resourceUnauthorized: 0,
  };
}
