import { inspect } from 'node:util';

/** Maximum number of characters of a response body that an error keeps, to show what came back. */
export const BODY_PREVIEW_MAX_CHARS = 200;

/** Stable codes of every error that tokenfleet raises; callers switch on these, never on messages. */
export type TokenfleetErrorCode =
  | 'TOKENFLEET_INVALID_CLIENT'
  | 'TOKENFLEET_UNSUPPORTED_GRANT_TYPE'
  | 'TOKENFLEET_CLIENT_REJECTED'
  | 'TOKENFLEET_RATE_LIMITED'
  | 'TOKENFLEET_TOKEN_ENDPOINT'
  | 'TOKENFLEET_TOKEN_ENDPOINT_TIMEOUT'
  | 'TOKENFLEET_INVALID_TOKEN_RESPONSE'
  | 'TOKENFLEET_LOCK_TIMEOUT'
  | 'TOKENFLEET_CLOSED'
  | 'TOKENFLEET_REDIS_UNAVAILABLE';

/**
 * Base class of every tokenfleet error. It never contains a secret or a token: the message, the code
 * and the fields below are safe to log, and the raw response body is kept only as a short preview.
 */
export class TokenfleetError extends Error {
  readonly code: TokenfleetErrorCode;

  constructor(code: TokenfleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  /** Plain fields for `JSON.stringify`: the name, code, message and subclass fields, no stack. */
  toJSON(): Record<string, unknown> {
    const fields: Record<string, unknown> = { name: this.name, code: this.code };
    for (const [key, value] of Object.entries(this)) {
      if (key !== 'cause') {
        fields[key] = value;
      }
    }
    fields.message = this.message;
    return fields;
  }
}

/** Fields that every error about a token endpoint response carries. */
export interface TokenEndpointErrorDetails {
  /** HTTP status of the response, or `undefined` when no response arrived. */
  status?: number;
  /** At most {@link BODY_PREVIEW_MAX_CHARS} characters of the response body, tokens masked. */
  bodyPreview?: string;
  /** The OAuth2 `error` code of the response body, such as `invalid_client`. */
  oauthError?: string;
  /** How long to wait before asking again, from `Retry-After` or the fleet cooldown. */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * The token endpoint rejected the client configuration (HTTP 400 or 401). Retrying cannot help
 * until an operator fixes the client id, secret or grant type, so the fleet backs off.
 */
export class ClientRejectedError extends TokenfleetError {
  readonly status: number | undefined;
  readonly oauthError: string | undefined;
  readonly bodyPreview: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: TokenEndpointErrorDetails = {},
    code: TokenfleetErrorCode = 'TOKENFLEET_CLIENT_REJECTED',
  ) {
    super(code, message, { cause: details.cause });
    this.status = details.status;
    this.oauthError = details.oauthError;
    this.bodyPreview = details.bodyPreview;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** The token endpoint returned `invalid_client`: a wrong client id or secret. */
export class InvalidClientError extends ClientRejectedError {
  constructor(message: string, details: TokenEndpointErrorDetails = {}) {
    super(message, details, 'TOKENFLEET_INVALID_CLIENT');
  }
}

/** The token endpoint returned `unsupported_grant_type` (Quiqup: HTTP 400). */
export class UnsupportedGrantTypeError extends ClientRejectedError {
  constructor(message: string, details: TokenEndpointErrorDetails = {}) {
    super(message, details, 'TOKENFLEET_UNSUPPORTED_GRANT_TYPE');
  }
}

/** The token endpoint returned 429, or the fleet is cooling down after one. */
export class RateLimitedError extends TokenfleetError {
  readonly status: number | undefined;
  readonly retryAfterMs: number;

  constructor(
    message: string,
    details: { status?: number; retryAfterMs: number; cause?: unknown },
  ) {
    super('TOKENFLEET_RATE_LIMITED', message, { cause: details.cause });
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** The token endpoint failed in a way that may pass: 5xx, a reset connection, no response. */
export class TokenEndpointError extends TokenfleetError {
  readonly status: number | undefined;
  readonly bodyPreview: string | undefined;
  readonly oauthError: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: TokenEndpointErrorDetails = {},
    code: TokenfleetErrorCode = 'TOKENFLEET_TOKEN_ENDPOINT',
  ) {
    super(code, message, { cause: details.cause });
    this.status = details.status;
    this.bodyPreview = details.bodyPreview;
    this.oauthError = details.oauthError;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** The token endpoint did not respond within `requestTimeoutMs`. */
export class TokenEndpointTimeoutError extends TokenEndpointError {
  readonly timeoutMs: number;

  constructor(message: string, details: { timeoutMs: number; cause?: unknown }) {
    super(message, { cause: details.cause }, 'TOKENFLEET_TOKEN_ENDPOINT_TIMEOUT');
    this.timeoutMs = details.timeoutMs;
  }
}

/**
 * The token endpoint responded, but not with a usable token: not JSON, no `access_token`, an
 * invalid `expires_in` or a `token_type` other than bearer. Nothing from it is stored or sent.
 */
export class InvalidTokenResponseError extends TokenfleetError {
  readonly status: number | undefined;
  readonly bodyPreview: string | undefined;
  /** The check that failed, such as `expires_in must be a finite number >= 0`. */
  readonly reason: string;
  /** Set while the fleet waits before asking again after such a response. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: { status?: number; bodyPreview?: string; reason: string; retryAfterMs?: number },
  ) {
    super('TOKENFLEET_INVALID_TOKEN_RESPONSE', message);
    this.status = details.status;
    this.bodyPreview = details.bodyPreview;
    this.reason = details.reason;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** Another pod held the refresh lock and no token appeared before the wait deadline. */
export class LockTimeoutError extends TokenfleetError {
  readonly waitedMs: number;

  constructor(message: string, details: { waitedMs: number; cause?: unknown }) {
    super('TOKENFLEET_LOCK_TIMEOUT', message, { cause: details.cause });
    this.waitedMs = details.waitedMs;
  }
}

/** The token cache was closed; create a new one. */
export class TokenCacheClosedError extends TokenfleetError {
  constructor() {
    super('TOKENFLEET_CLOSED', 'token cache is closed');
  }
}

/** Creates a caller-mistake `TypeError` with Node's `ERR_INVALID_ARG_TYPE` or `ERR_INVALID_ARG_VALUE` code. */
export function invalidArgument(
  code: 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE',
  message: string,
): TypeError & { code: string } {
  return Object.assign(new TypeError(message), { code });
}

/**
 * Cuts a response body down to a preview of at most {@link BODY_PREVIEW_MAX_CHARS} characters,
 * with whole JSON `access_token` values masked. Callers that hold the parsed body mask more
 * (`wire.ts` masks every secret field, in JSON and form bodies, and every copy of the token).
 */
export function previewBody(body: string): string {
  const masked = body.replace(/("access_token"\s*:\s*")[^"]*(")/g, '$1[redacted]$2');
  const flat = masked.replace(/\s+/g, ' ').trim();
  if (flat.length <= BODY_PREVIEW_MAX_CHARS) {
    return flat;
  }
  return `${flat.slice(0, BODY_PREVIEW_MAX_CHARS - 1)}…`;
}

/** Returns whether a value is a tokenfleet error with the given code. */
export function isTokenfleetError(
  error: unknown,
  code?: TokenfleetErrorCode,
): error is TokenfleetError {
  return error instanceof TokenfleetError && (code === undefined || error.code === code);
}

// util.inspect shows own properties only, which never include a secret, so the default is safe.
// This hook keeps the output short for log lines that print a whole error.
Object.defineProperty(TokenfleetError.prototype, inspect.custom, {
  value(this: TokenfleetError, depth: number, options: object, inspectFn: typeof inspect) {
    return `${this.stack ?? this.message} ${inspectFn(this.toJSON(), { ...options, depth })}`;
  },
});
