import type { TokenCache } from '@tokenfleet/core';
import { invalidArgType } from './arguments.js';

/** Token caches as the worker and the sweep accept them: any iterable, or a `Map` keyed by token id. */
export type CacheCollection = Iterable<TokenCache> | ReadonlyMap<string, TokenCache>;

/**
 * Returns the caches by token id. A `Map` is used as it is, so that caches the caller adds or
 * removes later are seen; its keys must be the caches' ids. Any other iterable is copied.
 */
export function toCacheLookup(
  path: string,
  caches: CacheCollection,
): ReadonlyMap<string, TokenCache> {
  if (caches instanceof Map) {
    return caches;
  }
  if (caches === null || typeof caches !== 'object' || !(Symbol.iterator in caches)) {
    throw invalidArgType(path, 'an iterable of token caches or a Map by token id', caches);
  }

  const lookup = new Map<string, TokenCache>();
  for (const cache of caches as Iterable<TokenCache>) {
    if (cache === null || typeof cache !== 'object' || typeof cache.renew !== 'function') {
      throw invalidArgType(`${path}[]`, 'a token cache from createTokenCache()', cache);
    }
    if (lookup.has(cache.id)) {
      const error = new TypeError(
        `"${path}" contains two caches for token ${cache.id}; pass one per token`,
      );
      throw Object.assign(error, { code: 'ERR_INVALID_ARG_VALUE' });
    }
    lookup.set(cache.id, cache);
  }
  return lookup;
}
