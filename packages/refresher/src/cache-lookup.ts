import type { TokenCache } from '@tokenfleet/core';
import { invalidArgType, invalidArgValue } from './arguments.js';

/** Token caches as the worker and the sweep accept them. */
export type CacheCollection = Iterable<TokenCache> | Map<string, TokenCache>;

/**
 * Returns the caches by token id. A `Map` is used as it is, so that caches the caller adds or
 * removes later are seen; its keys must be the caches' ids. Any other iterable is copied.
 */
export function toCacheLookup(path: string, caches: CacheCollection): ReadonlyMap<string, TokenCache> {
  if (caches instanceof Map) {
    return caches;
  }
  if (caches === null || typeof caches !== 'object' || !(Symbol.iterator in caches)) {
    throw invalidArgType(path, 'an iterable of token caches or a Map by token id', caches);
  }

  const lookup = new Map<string, TokenCache>();
  for (const cache of caches) {
    if (cache === null || typeof cache !== 'object' || typeof cache.renew !== 'function') {
      throw invalidArgType(`${path}[]`, 'a token cache from createTokenCache()', cache);
    }
    if (lookup.has(cache.id)) {
      throw invalidArgValue(path, `caches with distinct ids, but token ${cache.id} appears twice`, cache.id);
    }
    lookup.set(cache.id, cache);
  }
  return lookup;
}
