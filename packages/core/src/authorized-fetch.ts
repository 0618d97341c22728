import type { TokenCache } from './token-cache-types.js';

/** Options of {@link createAuthorizedFetch}. */
export interface AuthorizedFetchOptions {
  /** `fetch` implementation for the API requests. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * Wraps `fetch` so that every request carries `Authorization: Bearer <token>` from the cache,
 * replacing any `Authorization` header of the caller and keeping every other header.
 *
 * On a 401 the wrapper calls `cache.invalidate(token)` with the token it sent (a newer token that
 * another pod stored meanwhile is kept), gets a token again and retries the request once. A
 * second 401 is returned to the caller as it is. Errors from `getToken` and `invalidate` reject
 * the returned promise.
 */
export function createAuthorizedFetch(
  cache: Pick<TokenCache, 'getToken' | 'invalidate'>,
  options: AuthorizedFetchOptions = {},
): typeof fetch {
  if (typeof cache?.getToken !== 'function' || typeof cache.invalidate !== 'function') {
    throw Object.assign(
      new TypeError('"cache" must have getToken() and invalidate() methods, such as a TokenCache'),
      { code: 'ERR_INVALID_ARG_TYPE' },
    );
  }
  const fetchImpl: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));

  return async function authorizedFetch(input, init) {
    return sendAuthorized(cache, fetchImpl, input, init);
  };
}

async function sendAuthorized(
  cache: Pick<TokenCache, 'getToken' | 'invalidate'>,
  fetchImpl: typeof fetch,
  input: string | URL | Request,
  init: RequestInit | undefined,
): Promise<Response> {
  const firstToken = await cache.getToken();
  const first = await fetchImpl(input, withBearer(input, init, firstToken));
  if (first.status !== 401) {
    return first;
  }

  // NOTE: a body that is a stream (a ReadableStream, an async iterable, or any Request input
  // with a body) is consumed by the first attempt and cannot be sent again without buffering
  // all of it in memory. Such a request is not retried: the stale token is still invalidated,
  // and the caller gets the 401 and may send the request again.
  const replayable = canReplayBody(input, init);
  if (replayable) {
    await discardBody(first);
  }
  await cache.invalidate(firstToken);
  if (!replayable) {
    return first;
  }

  const secondToken = await cache.getToken();
  return fetchImpl(input, withBearer(input, init, secondToken));
}

/** Copies `init` with the caller's headers plus the bearer token. */
function withBearer(
  input: string | URL | Request,
  init: RequestInit | undefined,
  token: string,
): RequestInit {
  // fetch() uses init.headers in place of a Request's own headers when both are present.
  const headers = new Headers(
    init?.headers ?? (input instanceof Request ? input.headers : undefined),
  );
  headers.set('Authorization', `Bearer ${token}`);
  return { ...init, headers };
}

function canReplayBody(input: string | URL | Request, init: RequestInit | undefined): boolean {
  if (init?.body !== undefined) {
    return isBufferedBody(init.body);
  }
  return !(input instanceof Request) || input.body === null;
}

/** Body types that fetch() reads without consuming them, so the same value can be sent twice. */
function isBufferedBody(body: RequestInit['body']): boolean {
  return (
    body === null ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof Blob ||
    body instanceof URLSearchParams ||
    body instanceof FormData
  );
}

/** Cancels the unread body of a response we drop, so its connection can be reused or closed. */
async function discardBody(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // The body failed or was already closed, so nothing is left to release.
  }
}
