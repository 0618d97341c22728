import {
  invalidArgument,
  TokenEndpointError,
  TokenEndpointTimeoutError,
  TokenfleetError,
} from '../errors.js';

import type { TokenGrant, TokenProvider, TokenRequestContext } from '../provider.js';
import { processTokenResponse } from '../wire.js';

/** One token request, ready to send: everything but the method, which is always POST. */
export interface TokenRequest {
  /** Token endpoint URL. */
  url: string;
  /** Request headers, which may contain the client secret (HTTP Basic), so they are never logged. */
  headers: Record<string, string>;
  /** Encoded request body, which may contain the client secret, so it is never logged. */
  body: string;
}

/** Settings that both providers pass to {@link sendTokenRequest}. */
export interface SendTokenRequestOptions {
  fetch: typeof fetch;
  /** Lifetime to assume when the response has no `expires_in`, in milliseconds. */
  defaultExpiresInMs: number;
  /** The client secret and any other value that no error may contain, even when echoed. */
  secrets: readonly string[];
}

/** Options that every provider accepts, checked by {@link checkClientOptions}. */
export interface ClientOptions {
  clientId: string;
  clientSecret: string;
  defaultExpiresInMs?: number;
  fetch?: typeof fetch;
}

/**
 * Sends a token request and validates the response with `processTokenResponse`.
 *
 * Redirects are not followed: a 3xx fails with `TokenEndpointError`, because following one would
 * send the client secret to another URL. When `context.signal` aborts, the request fails with
 * `TokenEndpointTimeoutError`, unless the signal's reason is itself a tokenfleet error (such as
 * `TokenCacheClosedError`), which is thrown as it is. A network failure (refused or reset
 * connection, DNS) throws `TokenEndpointError` whose message names the error code and whose
 * `cause` is the error from `fetch`.
 */
export async function sendTokenRequest(
  request: TokenRequest,
  context: TokenRequestContext,
  options: SendTokenRequestOptions,
): Promise<TokenGrant> {
  // The origin leaves out any path, query and user info, so it is safe to put into a message.
  const endpoint = new URL(request.url).origin;

  let response: Response;
  try {
    response = await options.fetch(request.url, {
      method: 'POST',
      headers: request.headers,
      body: request.body,
      signal: context.signal,
      redirect: 'manual',
    });
  } catch (error) {
    if (isAbort(error, context.signal)) {
      throw abortError(endpoint, context);
    }
    throw networkError(endpoint, error);
  }

  try {
    return await processTokenResponse(response, {
      defaultExpiresInMs: options.defaultExpiresInMs,
      secrets: options.secrets,
    });
  } catch (error) {
    // When the signal aborts while the body is still arriving, processTokenResponse throws a
    // TokenEndpointError whose cause is the abort reason.
    if (error instanceof TokenEndpointError && isAbort(error.cause, context.signal)) {
      throw abortError(endpoint, context);
    }
    throw error;
  }
}

/** Checks the options that every provider shares and throws `TypeError` for a caller mistake. */
export function checkClientOptions(options: unknown, functionName: string): void {
  if (typeof options !== 'object' || options === null) {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      `"options" of ${functionName}() must be an object (received ${describeType(options)})`,
    );
  }

  const { clientId, clientSecret, defaultExpiresInMs, fetch } = options as Partial<ClientOptions>;
  checkNonEmptyString(clientId, 'options.clientId');
  checkNonEmptyString(clientSecret, 'options.clientSecret');
  if (defaultExpiresInMs !== undefined) {
    checkPositiveInteger(defaultExpiresInMs, 'options.defaultExpiresInMs');
  }
  if (fetch !== undefined && typeof fetch !== 'function') {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      `"options.fetch" must be a function (received ${describeType(fetch)})`,
    );
  }
}

/** Throws `TypeError` unless `value` is a non-empty string. The value itself is never shown. */
export function checkNonEmptyString(value: unknown, path: string): asserts value is string {
  if (typeof value !== 'string') {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      `"${path}" must be a non-empty string (received ${describeType(value)})`,
    );
  }
  if (value === '') {
    throw invalidArgument('ERR_INVALID_ARG_VALUE', `"${path}" must be a non-empty string`);
  }
}

/** Throws `TypeError` unless `value` is an integer > 0. The messages call it milliseconds. */
export function checkPositiveInteger(value: unknown, path: string): asserts value is number {
  if (typeof value !== 'number') {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      `"${path}" must be a positive integer of milliseconds (received ${describeType(value)})`,
    );
  }
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"${path}" must be a positive integer of milliseconds (received ${value})`,
    );
  }
}

/**
 * Parses an http or https URL and throws `TypeError` for anything else. URLs with user info are
 * rejected because `fetch` rejects them too, and the URL becomes part of the token identity.
 */
export function checkHttpUrl(value: unknown, path: string): URL {
  if (typeof value !== 'string' && !(value instanceof URL)) {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      `"${path}" must be a URL string (received ${describeType(value)})`,
    );
  }

  const url = URL.canParse(String(value)) ? new URL(String(value)) : undefined;
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"${path}" must be an absolute http or https URL`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"${path}" must not contain user info: pass the credentials as clientId and clientSecret`,
    );
  }
  return url;
}

/**
 * Freezes a provider with `sealingSecret` as a non-enumerable property, so `JSON.stringify`,
 * `util.inspect` and pino never print the secret when a caller logs the provider.
 */
export function createProvider(
  fields: Omit<TokenProvider, 'sealingSecret'>,
  sealingSecret: string,
): TokenProvider {
  const provider = { ...fields };
  Object.defineProperty(provider, 'sealingSecret', { value: sealingSecret, enumerable: false });
  return Object.freeze(provider) as TokenProvider;
}

/** Calls the global `fetch` at request time, so a fetch installed later (or a test spy) is used. */
export const globalFetch: typeof fetch = (input, init) => globalThis.fetch(input, init);

/** Returns the first `length` characters of a client id, with an ellipsis when it was cut. */
export function shortClientId(clientId: string, length = 8): string {
  return clientId.length > length ? `${clientId.slice(0, length)}…` : clientId;
}

function isAbort(error: unknown, signal: AbortSignal): boolean {
  if (!signal.aborted) {
    return false;
  }
  // undici rejects with the signal's reason, and other fetch implementations throw an AbortError.
  return (
    error === signal.reason ||
    (error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError'))
  );
}

function abortError(endpoint: string, context: TokenRequestContext): Error {
  if (context.signal.reason instanceof TokenfleetError) {
    return context.signal.reason;
  }
  return new TokenEndpointTimeoutError(
    `token request to ${endpoint} timed out after ${context.timeoutMs} ms: raise requestTimeoutMs if the endpoint is slow`,
    { timeoutMs: context.timeoutMs, cause: context.signal.reason },
  );
}

function networkError(endpoint: string, error: unknown): TokenEndpointError {
  return new TokenEndpointError(
    `token request to ${endpoint} failed before a response arrived (${errorCode(error)}): check that the endpoint is reachable, and retry with back-off`,
    { cause: error },
  );
}

/**
 * Reads the error code. undici throws `TypeError('fetch failed')` whose cause is the socket error,
 * such as ECONNREFUSED, and other implementations put the code on the error itself.
 */
function errorCode(error: unknown): string {
  for (const candidate of [(error as { cause?: unknown } | undefined)?.cause, error]) {
    const code = (candidate as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string' && code !== '') {
      return code;
    }
  }
  return 'fetch failed';
}

function describeType(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  return Array.isArray(value) ? 'array' : typeof value;
}
