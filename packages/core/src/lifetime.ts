import {
  ClientRejectedError,
  InvalidClientError,
  InvalidTokenResponseError,
  RateLimitedError,
  TokenEndpointError,
  type TokenfleetError,
  UnsupportedGrantTypeError,
} from './errors.js';

/**
 * Maximum life the cache stores, in milliseconds (365 days). An endpoint that states more is
 * taken at this value, so a bogus `expires_in` such as 1e300 never reaches Redis or a timer.
 */
export const MAX_STORED_LIFETIME_MS = 365 * 24 * 3_600_000;

/**
 * Computes the PX of a token with `remainingMs` of life left on arrival. The margin is `skewMs`,
 * but never more than half the remaining life, so a token shorter than the margin keeps half its
 * life instead of none. Returns an integer of at least 1 and at most
 * {@link MAX_STORED_LIFETIME_MS}, or 0 when no usable life is left.
 */
export function storedLifetimeMs(remainingMs: number, skewMs: number): number {
  if (!(remainingMs > 0)) {
    return 0;
  }
  const marginMs = Math.min(skewMs, remainingMs / 2);
  const lifetimeMs = Math.min(Math.floor(remainingMs - marginMs), MAX_STORED_LIFETIME_MS);
  return lifetimeMs >= 1 ? lifetimeMs : 0;
}

/**
 * Computes the PX of a token that the endpoint handed back unchanged, with `remainingMs` of
 * stated life. The margin stays whole instead of shrinking with the life, so the cache does not
 * ask again and again as the end nears. With no usable life left it returns 0.
 */
export function reusedLifetimeMs(remainingMs: number, marginMs: number): number {
  const lifetimeMs = Math.min(Math.floor(remainingMs - marginMs), MAX_STORED_LIFETIME_MS);
  return lifetimeMs >= 1 ? lifetimeMs : 0;
}

/** The value of the cooldown key: enough to raise the same kind of error on every pod. */
interface CooldownValue {
  code: string;
  message: string;
  status?: number;
  oauthError?: string;
  /** `InvalidTokenResponseError.reason`, for a cooldown after an unusable response. */
  reason?: string;
}

/** Serializes the error that started a cooldown; the message is already free of secrets. */
export function encodeCooldown(error: TokenfleetError): string {
  const value: CooldownValue = { code: error.code, message: error.message };
  if ('status' in error && typeof error.status === 'number') {
    value.status = error.status;
  }
  if (error instanceof ClientRejectedError && error.oauthError !== undefined) {
    value.oauthError = error.oauthError;
  }
  if (error instanceof InvalidTokenResponseError) {
    value.reason = error.reason;
  }
  return JSON.stringify(value);
}

/**
 * Builds the error that callers get while the fleet cools down: the class of the error that
 * started it, with `retryAfterMs` set to the cooldown's PTTL.
 */
export function cooldownError(value: string, retryAfterMs: number): TokenfleetError {
  let parsed: Partial<CooldownValue> = {};
  try {
    parsed = JSON.parse(value) as Partial<CooldownValue>;
  } catch {
    // A cooldown that does not parse still backs off; only its message is generic.
  }

  const seconds = Math.ceil(retryAfterMs / 1000);
  const original = typeof parsed.message === 'string' ? parsed.message : 'token endpoint failed';
  const message = `${original} (fleet cooldown: next token request in ${seconds} s)`;
  const details = {
    status: parsed.status,
    oauthError: parsed.oauthError,
    retryAfterMs,
  };

  switch (parsed.code) {
    case 'TOKENFLEET_RATE_LIMITED':
      return new RateLimitedError(message, { status: parsed.status, retryAfterMs });
    case 'TOKENFLEET_INVALID_CLIENT':
      return new InvalidClientError(message, details);
    case 'TOKENFLEET_UNSUPPORTED_GRANT_TYPE':
      return new UnsupportedGrantTypeError(message, details);
    case 'TOKENFLEET_INVALID_TOKEN_RESPONSE':
      return new InvalidTokenResponseError(message, {
        status: parsed.status,
        reason: typeof parsed.reason === 'string' ? parsed.reason : 'invalid token response',
        retryAfterMs,
      });
    case 'TOKENFLEET_CLIENT_REJECTED':
      return new ClientRejectedError(message, details);
    default:
      return new TokenEndpointError(message, details);
  }
}
