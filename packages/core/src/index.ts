export { type AuthorizedFetchOptions, createAuthorizedFetch } from './authorized-fetch.js';
export {
  BODY_PREVIEW_MAX_CHARS,
  ClientRejectedError,
  InvalidClientError,
  InvalidTokenResponseError,
  isTokenfleetError,
  LockTimeoutError,
  RateLimitedError,
  TokenCacheClosedError,
  TokenEndpointError,
  TokenEndpointTimeoutError,
  TokenfleetError,
  type TokenfleetErrorCode,
  UnsupportedGrantTypeError,
} from './errors.js';
export { type InspectTokensOptions, inspectTokens } from './inspect-tokens.js';
export { buildTokenKeys, computeTokenId, type TokenKeys } from './keys.js';
export { MAX_STORED_LIFETIME_MS, storedLifetimeMs } from './lifetime.js';
export {
  DEFAULT_TOKEN_CACHE_OPTIONS,
  defaultRefreshAheadMs,
  type MarginFunction,
  type RetryOptions,
  type TokenCacheOptions,
} from './options.js';
export type { TokenGrant, TokenProvider, TokenRequestContext } from './provider.js';
export {
  type ClientAuthMethod,
  DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS,
  type OAuth2ClientCredentialsOptions,
  oauth2ClientCredentials,
  type TokenRequestBodyFormat,
} from './providers/oauth2-client-credentials.js';
export {
  DEFAULT_QUIQUP_OPTIONS,
  QUIQUP_BASE_URLS,
  type QuiqupEnvironment,
  type QuiqupOptions,
  quiqup,
} from './providers/quiqup.js';
export {
  RedisUnavailableError,
  type SanitizedRedisError,
  sanitizeRedisError,
} from './redis-store.js';
export { createSealer, deriveSealingKey, type Sealer, type SealingKey } from './seal.js';
export { createTokenCache } from './token-cache.js';
export type * from './token-cache-types.js';
export {
  DEFAULT_RETRY_AFTER_MS,
  MAX_RETRY_AFTER_MS,
  type OAuthErrorResponse,
  parseRetryAfter,
  processTokenResponse,
  type TokenEndpointResponse,
} from './wire.js';
