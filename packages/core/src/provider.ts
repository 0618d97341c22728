/**
 * A token as the endpoint granted it, already validated: the domain twin of the wire type
 * `TokenEndpointResponse`.
 */
export interface TokenGrant {
  /** The bearer token; never logged. */
  accessToken: string;
  /** Remaining life that the endpoint stated in `expires_in`, in milliseconds (may be fractional). */
  expiresInMs: number;
  /** True when `expires_in` was missing and the provider's `defaultExpiresInMs` was used. */
  expiresInDefaulted: boolean;
  /** The endpoint's `created_at` (Unix seconds), for logging the clock offset only. */
  createdAt?: number;
}

/** What the token cache hands a provider for one token request. */
export interface TokenRequestContext {
  /** Aborts the request when `requestTimeoutMs` passes or the cache closes. */
  signal: AbortSignal;
  /** The timeout behind `signal`, in milliseconds, for error messages. */
  timeoutMs: number;
}

/**
 * Sends token requests to one OAuth2 token endpoint for one client. Create one with `quiqup()` or
 * `oauth2ClientCredentials()`.
 */
export interface TokenProvider {
  /** Short name for logs, such as `quiqup` or `oauth2`. */
  readonly name: string;
  /**
   * Every parameter that changes the token (endpoint URL, client id, scope, audience, extra
   * parameters), never the secret. The token id is a hash of these.
   */
  readonly identity: Readonly<Record<string, string>>;
  /** A label that is safe to show in status output, such as `quiqup staging client 3f2a…`. */
  readonly label: string;
  /** Secret material from which the default sealing key is derived; never logged or stored. */
  readonly sealingSecret: string;
  /**
   * Sends one token request and validates the response.
   *
   * Throws `InvalidClientError` or `UnsupportedGrantTypeError` (or `ClientRejectedError`) for a
   * rejected client, `RateLimitedError` for 429, `TokenEndpointTimeoutError` when `signal`
   * aborts, `TokenEndpointError` for 5xx and network faults, `InvalidTokenResponseError` for any
   * response that is not a usable bearer token.
   */
  requestToken(context: TokenRequestContext): Promise<TokenGrant>;
}
