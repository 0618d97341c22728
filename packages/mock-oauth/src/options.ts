import type { Logger } from 'pino';
import { invalidArgType, invalidArgValue, isPlainObject } from './invalid-argument.js';

/** Token lifetimes of the two Quiqup environments, in seconds: 7 days and 1 hour. */
export const PRESET_EXPIRES_IN_SECONDS = Object.freeze({
  production: 604_800,
  staging: 3_600,
});

/** A Quiqup environment whose token lifetime the server copies. */
export type MockOAuthPreset = keyof typeof PRESET_EXPIRES_IN_SECONDS;

/** One OAuth2 client that the token endpoint accepts. */
export interface MockOAuthClient {
  clientId: string;
  clientSecret: string;
}

/** Options of {@link startMockOAuthServer}. */
export interface MockOAuthServerOptions {
  /** TCP port to listen on. Default `0`: a free port that the operating system picks. */
  port?: number;
  /** Address to listen on. Default `127.0.0.1` (loopback only). */
  host?: string;
  /**
   * Token lifetime of a Quiqup environment: `production` (604800 s) or `staging` (3600 s).
   * Default `production`. Pass either `preset` or `expiresIn`, not both.
   */
  preset?: MockOAuthPreset;
  /**
   * Token lifetime in seconds; fractions are allowed (`0.3` is 300 ms). `0` issues tokens that
   * are already expired; negative values are rejected. Default: the preset's lifetime.
   */
  expiresIn?: number;
  /** Clients that the token endpoint accepts. Default: one client `demo-client` / `demo-secret`. */
  clients?: readonly MockOAuthClient[];
  /** pino logger; the server logs through `logger.child({ component: 'mock-oauth' })`. Default: silent. */
  logger?: Logger;
}

/** Defaults of {@link MockOAuthServerOptions}. */
export const DEFAULT_MOCK_OAUTH_OPTIONS = Object.freeze({
  port: 0,
  host: '127.0.0.1',
  preset: 'production' as MockOAuthPreset,
  clients: Object.freeze([
    Object.freeze({ clientId: 'demo-client', clientSecret: 'demo-secret' }),
  ]) as readonly MockOAuthClient[],
});

/** Options after defaults and validation. */
export interface ResolvedMockOAuthOptions {
  port: number;
  host: string;
  expiresInSeconds: number;
  clients: readonly MockOAuthClient[];
  logger: Logger | undefined;
}

/** Merges `options` over the defaults and validates every field; throws `TypeError` on a bad one. */
export function resolveOptions(options: MockOAuthServerOptions = {}): ResolvedMockOAuthOptions {
  // Checked through an `unknown` copy, so the narrowing keeps the options' declared types.
  const untyped: unknown = options;
  if (!isPlainObject(untyped)) {
    throw invalidArgType('options', 'an object', options);
  }

  const port = options.port ?? DEFAULT_MOCK_OAUTH_OPTIONS.port;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw invalidArgValue('options.port', 'must be an integer from 0 to 65535', port);
  }

  const host = options.host ?? DEFAULT_MOCK_OAUTH_OPTIONS.host;
  if (typeof host !== 'string' || host === '') {
    throw invalidArgType('options.host', 'a non-empty string', host);
  }

  if (options.preset !== undefined && options.expiresIn !== undefined) {
    throw invalidArgValue('options.preset', 'cannot be combined with "options.expiresIn"');
  }
  let expiresInSeconds: number;
  if (options.expiresIn !== undefined) {
    expiresInSeconds = validateExpiresIn(options.expiresIn, 'options.expiresIn');
  } else {
    expiresInSeconds = presetExpiresIn(options.preset ?? DEFAULT_MOCK_OAUTH_OPTIONS.preset);
  }

  const clients = validateClients(options.clients ?? DEFAULT_MOCK_OAUTH_OPTIONS.clients);

  return { port, host, expiresInSeconds, clients, logger: options.logger };
}

/** Returns the token lifetime of a preset, in seconds; throws `TypeError` on an unknown name. */
export function presetExpiresIn(preset: unknown): number {
  if (preset !== 'production' && preset !== 'staging') {
    throw invalidArgValue('options.preset', 'must be "production" or "staging"', preset);
  }
  return PRESET_EXPIRES_IN_SECONDS[preset];
}

/** Checks a token lifetime in seconds: a finite number, 0 or more. Returns it unchanged. */
export function validateExpiresIn(seconds: unknown, path: string): number {
  if (typeof seconds !== 'number') {
    throw invalidArgType(path, 'a number of seconds', seconds);
  }
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw invalidArgValue(path, 'must be a finite number of seconds, 0 or more', seconds);
  }
  return seconds;
}

function validateClients(clients: unknown): readonly MockOAuthClient[] {
  if (!Array.isArray(clients) || clients.length === 0) {
    throw invalidArgType('options.clients', 'a non-empty array of clients', clients);
  }

  const seen = new Set<string>();
  const copies: MockOAuthClient[] = [];
  for (const [index, client] of clients.entries()) {
    const path = `options.clients[${index}]`;
    if (!isPlainObject(client)) {
      throw invalidArgType(path, 'an object with clientId and clientSecret', client);
    }
    if (typeof client.clientId !== 'string' || client.clientId === '') {
      throw invalidArgType(`${path}.clientId`, 'a non-empty string', client.clientId);
    }
    // The secret itself is never shown in the message, only its type.
    if (typeof client.clientSecret !== 'string') {
      throw invalidArgType(`${path}.clientSecret`, 'a string', typeof client.clientSecret);
    }
    if (seen.has(client.clientId)) {
      throw invalidArgValue(`${path}.clientId`, 'must be unique', client.clientId);
    }
    seen.add(client.clientId);
    copies.push({ clientId: client.clientId, clientSecret: client.clientSecret });
  }
  return copies;
}
