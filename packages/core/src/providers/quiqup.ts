import { invalidArgument } from '../errors.js';
import type { TokenProvider, TokenRequestContext } from '../provider.js';
import {
  checkClientOptions,
  checkHttpUrl,
  createProvider,
  globalFetch,
  sendTokenRequest,
  shortClientId,
} from './send-token-request.js';

/** Base URLs of the Quiqup Platform API (Quiqup Authentication API documentation, v1.0.0). */
export const QUIQUP_BASE_URLS = Object.freeze({
  production: 'https://platform-api.quiqup.com',
  staging: 'https://platform-api.staging.quiqup.com',
});

export type QuiqupEnvironment = keyof typeof QUIQUP_BASE_URLS;

/** Defaults of {@link QuiqupOptions}. */
export const DEFAULT_QUIQUP_OPTIONS = Object.freeze({
  /**
   * 1 hour, the shorter of Quiqup's two documented lifetimes (staging 1 hour, production 7 days):
   * a response without `expires_in` is then renewed early rather than sent after it ended.
   */
  defaultExpiresInMs: 3_600_000,
});

/** Options of {@link quiqup}. */
export interface QuiqupOptions {
  /** Quiqup environment, whose base URL is used unless `baseUrl` is set. */
  environment: QuiqupEnvironment;
  clientId: string;
  /** Client secret, never logged or stored. It is also the default source of the sealing key. */
  clientSecret: string;
  /**
   * Base URL that replaces the environment's, such as a mock server in tests. The token request
   * goes to `<baseUrl>/oauth/token`. Default: the environment's URL from {@link QUIQUP_BASE_URLS}.
   */
  baseUrl?: string;
  /**
   * Lifetime assumed when a token response has no `expires_in`, in milliseconds. Must be > 0.
   * Default: {@link DEFAULT_QUIQUP_OPTIONS}.defaultExpiresInMs (1 hour).
   */
  defaultExpiresInMs?: number;
  /** `fetch` implementation for the token request. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * Creates a provider for the Quiqup Platform API: `POST <baseUrl>/oauth/token` with a JSON body
 * of `client_id`, `client_secret` and `grant_type: client_credentials`, as Quiqup documents.
 * Throws `TypeError` (code `ERR_INVALID_ARG_TYPE` or `ERR_INVALID_ARG_VALUE`) for invalid options.
 */
export function quiqup(options: QuiqupOptions): TokenProvider {
  checkClientOptions(options, 'quiqup');
  const { environment, clientId, clientSecret } = options;
  if (typeof environment !== 'string' || !Object.hasOwn(QUIQUP_BASE_URLS, environment)) {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"options.environment" must be 'production' or 'staging' (received ${JSON.stringify(environment)})`,
    );
  }

  const baseUrl = options.baseUrl ?? QUIQUP_BASE_URLS[environment];
  checkHttpUrl(baseUrl, 'options.baseUrl');
  const tokenUrl = `${baseUrl.replace(/\/+$/, '')}/oauth/token`;
  const sendOptions = {
    fetch: options.fetch ?? globalFetch,
    defaultExpiresInMs: options.defaultExpiresInMs ?? DEFAULT_QUIQUP_OPTIONS.defaultExpiresInMs,
    secrets: [clientSecret],
  };

  return createProvider(
    {
      name: 'quiqup',
      identity: Object.freeze({ tokenUrl, clientId }),
      label: `quiqup ${environment} client ${shortClientId(clientId)}`,
      requestToken(context: TokenRequestContext) {
        const request = {
          url: tokenUrl,
          headers: { accept: 'application/json', 'content-type': 'application/json' },
          body: JSON.stringify({
            client_id: clientId,
            client_secret: clientSecret,
            grant_type: 'client_credentials',
          }),
        };
        return sendTokenRequest(request, context, sendOptions);
      },
    },
    clientSecret,
  );
}
