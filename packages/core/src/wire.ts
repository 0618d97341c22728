import {
  ClientRejectedError,
  InvalidClientError,
  InvalidTokenResponseError,
  previewBody,
  RateLimitedError,
  TokenEndpointError,
  UnsupportedGrantTypeError,
} from './errors.js';
import type { TokenGrant } from './provider.js';

/**
 * Wait after a 429 whose `Retry-After` header is missing or invalid: long enough that a fleet
 * does not hammer a rate-limited endpoint, short enough that a token due for renewal is retried
 * well within its remaining life.
 */
export const DEFAULT_RETRY_AFTER_MS = 30_000;

/** Shortest wait after a 429, in milliseconds, whatever `Retry-After` sets. */
export const MIN_RATE_LIMIT_WAIT_MS = 1_000;

/**
 * Upper bound of any wait taken from `Retry-After`: a misconfigured or hostile endpoint cannot
 * stop the fleet for hours. A 10-minute pause is still shorter than a staging token's 1-hour life.
 */
export const MAX_RETRY_AFTER_MS = 600_000;

/** Successful token response as RFC 6749 section 5.1 spells it, plus Doorkeeper's `created_at`. */
export interface TokenEndpointResponse {
  access_token: string;
  /** Only `bearer` (any case) is accepted. A missing value is taken as bearer. */
  token_type?: string;
  /** Remaining life of the token in seconds, sometimes sent as a numeric string. */
  expires_in?: number | string;
  /** Unix time in seconds when the server issued the token (Doorkeeper). */
  created_at?: number;
  scope?: string;
  [parameter: string]: unknown;
}

/** Error response as RFC 6749 section 5.2 spells it. */
export interface OAuthErrorResponse {
  error: string;
  error_description?: string;
  error_uri?: string;
}

/** Options of {@link processTokenResponse}. */
export interface ProcessTokenResponseOptions {
  /** Lifetime to assume when a successful response has no `expires_in`, in milliseconds. */
  defaultExpiresInMs: number;
  /**
   * Values that no error may contain, such as the client secret, for servers that echo the
   * request: every copy in a body preview is masked, also JSON-, URL- or HTML-escaped, and an
   * OAuth `error` code that contains one is dropped. Default: none.
   */
  secrets?: readonly string[];
}

/** Response fields whose values are secrets and are masked in every body preview. */
const SECRET_FIELDS = 'access_token|refresh_token|id_token|client_secret';

/** A secret field in JSON, including a string cut off before its closing quote. */
const SECRET_JSON_VALUE = new RegExp(
  `("(?:${SECRET_FIELDS})"\\s*:\\s*")(?:[^"\\\\]|\\\\.)*("|$)`,
  'g',
);

/** A secret field in a form-encoded body, such as `access_token=...&token_type=bearer`. */
const SECRET_FORM_VALUE = new RegExp(`((?:^|[?&\\s])(?:${SECRET_FIELDS})=)[^&\\s]*`, 'g');

const REDACTED = '[redacted]';

/** HTTP credentials such as an echoed `Authorization: Basic ...` header (RFC 7235 token68). */
const CREDENTIALS = /\b(Basic|Bearer)\s+[A-Za-z0-9\-._~+/]+=*/gi;

/**
 * Visible ASCII without spaces (%x21-7E): what an `Authorization: Bearer` header carries intact.
 * RFC 6750 allows fewer characters (b64token). Only the characters that break the header fail
 * here, so an opaque token in another visible-ASCII format is still accepted.
 */
const HEADER_SAFE_TOKEN = /^[\x21-\x7E]+$/;

/** Printable ASCII except `"` and `\`, as RFC 6749 section 5.2 allows in `error`. */
const OAUTH_ERROR_CODE = /^[\x20\x21\x23-\x5B\x5D-\x7E]{1,64}$/;

/** Delta-seconds form of `Retry-After` (RFC 9110 section 10.2.3). */
const DELTA_SECONDS = /^\d+$/;

/** The three HTTP-date forms of RFC 9110 section 5.6.7: IMF-fixdate, RFC 850 and asctime. */
const IMF_FIXDATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * Parses a `Retry-After` header into a wait in milliseconds: delta seconds or an HTTP date
 * (measured against `nowMs`, milliseconds since the epoch). A date in the past gives 0, and
 * every wait is capped at {@link MAX_RETRY_AFTER_MS}. Returns `undefined` for a missing or
 * invalid header.
 */
export function parseRetryAfter(header: string | null, nowMs: number): number | undefined {
  if (header === null) {
    return undefined;
  }
  const value = header.trim();

  if (DELTA_SECONDS.test(value)) {
    return Math.min(Number(value) * 1000, MAX_RETRY_AFTER_MS);
  }

  let dateMs = Number.NaN;
  if (IMF_FIXDATE.test(value) || RFC850_DATE.test(value)) {
    dateMs = Date.parse(value);
  } else if (ASCTIME_DATE.test(value)) {
    // asctime carries no zone and RFC 9110 defines it as GMT, but Date.parse would read local time.
    dateMs = Date.parse(`${value} GMT`);
  }
  if (Number.isNaN(dateMs)) {
    return undefined;
  }
  return Math.min(Math.max(0, dateMs - nowMs), MAX_RETRY_AFTER_MS);
}

/**
 * Turns a token endpoint response into a validated {@link TokenGrant}, or throws the typed error
 * for it. The body is read once, as text.
 *
 * - 2xx: the body must be a JSON object with a non-empty string `access_token`, an `expires_in`
 *   that is a finite number >= 0 (a numeric string such as `"3600"` is accepted) and a
 *   `token_type` of `bearer` in any case. A missing `token_type` is taken as bearer, because some
 *   servers omit it although RFC 6749 requires it. A missing `expires_in` gives
 *   `defaultExpiresInMs` and `expiresInDefaulted: true`. `expires_in: 0` passes here, with
 *   `expiresInMs: 0`; the cache declines to store such a token. Anything else throws
 *   `InvalidTokenResponseError`.
 * - 400: `InvalidClientError` for `invalid_client`. `UnsupportedGrantTypeError` for
 *   `unsupported_grant_type` or a body without an OAuth error, because Quiqup documents a bare
 *   400 for a wrong grant type. `ClientRejectedError` for any other OAuth error.
 * - 401: `InvalidClientError`.
 * - 429: `RateLimitedError` with `retryAfterMs` from `Retry-After`, or
 *   {@link DEFAULT_RETRY_AFTER_MS} when it is missing or invalid.
 * - Anything else (5xx, 3xx, other 4xx): `TokenEndpointError`.
 *
 * Every error carries the status. Once the body was read, all but `RateLimitedError` also carry a
 * preview of it with secrets masked. No error contains the token.
 */
export async function processTokenResponse(
  response: Response,
  options: ProcessTokenResponseOptions,
): Promise<TokenGrant> {
  const status = response.status;
  let body: string;
  try {
    body = await response.text();
  } catch (error) {
    throw new TokenEndpointError(
      `token endpoint response body could not be read (HTTP ${status}): the connection failed or was aborted, retry later`,
      { status, cause: error },
    );
  }

  const parsed = parseJsonBody(body);
  const secrets = escapedForms(options.secrets ?? []);
  const bodyPreview = previewSecretSafe(body, parsed.value, secrets);

  if (status >= 200 && status < 300) {
    return toTokenGrant(response, parsed, bodyPreview, options);
  }

  const oauthError = readOAuthError(parsed.value, secrets);
  const details = { status, bodyPreview, oauthError };
  const statusText = oauthError === undefined ? `HTTP ${status}` : `HTTP ${status} ${oauthError}`;

  if (status === 401 || (status === 400 && oauthError === 'invalid_client')) {
    throw new InvalidClientError(
      `token endpoint rejected the client (${statusText}): check clientId and clientSecret`,
      details,
    );
  }
  if (status === 400 && (oauthError === undefined || oauthError === 'unsupported_grant_type')) {
    throw new UnsupportedGrantTypeError(
      `token endpoint rejected the grant type (${statusText}): the client must be allowed the client_credentials grant`,
      details,
    );
  }
  if (status === 400) {
    throw new ClientRejectedError(
      `token endpoint rejected the token request (${statusText}): check scope, audience, resource and extra parameters`,
      details,
    );
  }

  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), Date.now());
  if (status === 429) {
    // `Retry-After` counts whole seconds, so 0 means "within a second", not "at once".
    const waitMs = Math.max(MIN_RATE_LIMIT_WAIT_MS, retryAfterMs ?? DEFAULT_RETRY_AFTER_MS);
    const source =
      retryAfterMs === undefined ? 'no valid Retry-After, default wait' : 'Retry-After';
    throw new RateLimitedError(
      `token endpoint rate-limited the client (HTTP 429): wait ${waitMs} ms (${source}) before the next token request`,
      { status, retryAfterMs: waitMs },
    );
  }

  throw new TokenEndpointError(describeFailedStatus(status), {
    status,
    bodyPreview,
    retryAfterMs,
  });
}

interface ParsedBody {
  /** The parsed JSON value; `undefined` when the body is not JSON. */
  value: unknown;
  isJson: boolean;
  /** True when the body is empty or only whitespace. */
  isEmpty: boolean;
}

function parseJsonBody(body: string): ParsedBody {
  const isEmpty = body.trim() === '';
  try {
    return { value: JSON.parse(body), isJson: true, isEmpty };
  } catch {
    return { value: undefined, isJson: false, isEmpty };
  }
}

/**
 * Masks secret fields, HTTP credentials, every copy of a parsed `access_token` and of `secrets`
 * anywhere in the body, before `previewBody` cuts the preview.
 */
function previewSecretSafe(body: string, parsed: unknown, secrets: readonly string[]): string {
  let masked = body
    .replace(SECRET_JSON_VALUE, `$1${REDACTED}$2`)
    .replace(SECRET_FORM_VALUE, `$1${REDACTED}`);
  if (isObject(parsed) && typeof parsed.access_token === 'string' && parsed.access_token !== '') {
    masked = masked.split(parsed.access_token).join(REDACTED);
  }
  for (const secret of secrets) {
    masked = masked.split(secret).join(REDACTED);
  }
  return previewBody(masked.replace(CREDENTIALS, `$1 ${REDACTED}`));
}

/**
 * Returns each secret as sent and as an echoing server may write it back (JSON-, URL-, form- and
 * HTML-escaped), longest first so that a longer form is masked whole.
 */
function escapedForms(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    const json = JSON.stringify(secret).slice(1, -1);
    const form = new URLSearchParams([['', secret]]).toString().slice(1);
    for (const value of [secret, json, encodeURIComponent(secret), form, escapeHtml(json)]) {
      if (value !== '') {
        forms.add(value);
      }
    }
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function toTokenGrant(
  response: Response,
  parsed: ParsedBody,
  bodyPreview: string,
  options: ProcessTokenResponseOptions,
): TokenGrant {
  const status = response.status;
  const invalid = (reason: string, hint: string): InvalidTokenResponseError =>
    new InvalidTokenResponseError(
      `token endpoint returned an unusable token response (HTTP ${status}): ${reason}. ${hint}`,
      { status, bodyPreview, reason },
    );
  const checkUrl = 'Check that tokenUrl points at an OAuth2 token endpoint';

  if (!parsed.isJson) {
    const contentType = response.headers.get('content-type') ?? 'none';
    const reason = parsed.isEmpty ? 'body is empty' : 'body is not JSON';
    throw invalid(reason, `${checkUrl} (content-type: ${contentType})`);
  }
  const wire = parsed.value;
  if (!isObject(wire)) {
    throw invalid('body is not a JSON object', checkUrl);
  }

  if (wire.access_token === undefined) {
    throw invalid('access_token is missing', checkUrl);
  }
  if (typeof wire.access_token !== 'string' || wire.access_token === '') {
    throw invalid('access_token must be a non-empty string', checkUrl);
  }
  if (!HEADER_SAFE_TOKEN.test(wire.access_token)) {
    throw invalid(
      'access_token must contain only visible ASCII characters, no spaces',
      'tokenfleet sends tokens only as "Authorization: Bearer"',
    );
  }

  const expiresInSeconds = readExpiresIn(wire.expires_in);
  if (expiresInSeconds === 'invalid') {
    throw invalid(
      'expires_in must be a finite number >= 0',
      'The endpoint must state the token lifetime in seconds',
    );
  }

  if (wire.token_type !== undefined && !isBearer(wire.token_type)) {
    throw invalid(
      'token_type must be bearer',
      'tokenfleet sends tokens only as "Authorization: Bearer"',
    );
  }

  const grant: TokenGrant = {
    accessToken: wire.access_token,
    expiresInMs:
      expiresInSeconds === undefined ? options.defaultExpiresInMs : expiresInSeconds * 1000,
    expiresInDefaulted: expiresInSeconds === undefined,
  };
  const createdAt = readCreatedAt(wire.created_at);
  if (createdAt !== undefined) {
    grant.createdAt = createdAt;
  }
  return grant;
}

/**
 * Checks a grant from any provider, built-in or custom, before the cache stores or hands out its
 * token: the same rules as for a token response. Returns the rule that failed, or `undefined`.
 */
export function findGrantProblem(grant: unknown): string | undefined {
  if (!isObject(grant)) {
    return 'the grant must be an object';
  }
  if (typeof grant.accessToken !== 'string' || grant.accessToken === '') {
    return 'accessToken must be a non-empty string';
  }
  if (!HEADER_SAFE_TOKEN.test(grant.accessToken)) {
    return 'accessToken must contain only visible ASCII characters, no spaces';
  }
  const expiresInMs = grant.expiresInMs;
  if (typeof expiresInMs !== 'number' || !Number.isFinite(expiresInMs) || expiresInMs < 0) {
    return 'expiresInMs must be a finite number >= 0';
  }
  return undefined;
}

/** Returns seconds, `undefined` when the field is absent, or `'invalid'`. */
function readExpiresIn(value: unknown): number | undefined | 'invalid' {
  if (value === undefined) {
    return undefined;
  }

  let seconds: number;
  if (typeof value === 'number') {
    seconds = value;
  } else if (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)) {
    seconds = Number(value);
  } else {
    return 'invalid';
  }

  // JSON.parse turns 1e309 into Infinity, and a long digit string does the same through Number.
  if (!Number.isFinite(seconds) || seconds < 0) {
    return 'invalid';
  }
  return seconds;
}

/** `created_at` is only logged, so an unusable value is dropped rather than rejected. */
function readCreatedAt(value: unknown): number | undefined {
  const seconds = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof seconds === 'number' && Number.isFinite(seconds) ? seconds : undefined;
}

function isBearer(tokenType: unknown): boolean {
  return typeof tokenType === 'string' && tokenType.toLowerCase() === 'bearer';
}

/**
 * Reads the OAuth `error` code. It goes into error messages, so only a value in the character
 * set of RFC 6749 section 5.2 and at most 64 characters long counts.
 */
function readOAuthError(body: unknown, secrets: readonly string[]): string | undefined {
  if (isObject(body) && typeof body.error === 'string' && OAUTH_ERROR_CODE.test(body.error)) {
    const error = body.error;
    return secrets.some((secret) => error.includes(secret)) ? undefined : error;
  }
  return undefined;
}

function describeFailedStatus(status: number): string {
  if (status >= 500) {
    return `token endpoint failed (HTTP ${status}): the server is failing, retry with back-off`;
  }
  if (status >= 300 && status < 400) {
    return `token endpoint redirected the token request (HTTP ${status}), and redirects are not followed: set tokenUrl to the final URL`;
  }
  return `token endpoint returned HTTP ${status}: check tokenUrl and the client's permissions`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
