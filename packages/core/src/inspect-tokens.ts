import { Cluster, type Redis } from 'ioredis';
import { buildTokenKeys, generationKeyPattern, parseGenerationKey } from './keys.js';
import { DEFAULT_TOKEN_CACHE_OPTIONS } from './options.js';
import { RedisTokenStore } from './redis-store.js';
import type { TokenStatus } from './token-cache-types.js';
import { decodeTokenRecord } from './token-record.js';

/** Keys asked for per SCAN call. */
const SCAN_COUNT = 500;

export interface InspectTokensOptions {
  /** Prefix of the keys to look at. Default `tokenfleet`. */
  keyPrefix?: string;
  /** Timeout of each Redis command, in milliseconds. Default 2000. */
  redisTimeoutMs?: number;
}

/**
 * Lists every token that has a generation counter under `keyPrefix`, with its stored metadata
 * and never the token itself. It needs no provider or secret, so operators can run it anywhere.
 */
export async function inspectTokens(
  redis: Redis | Cluster,
  options: InspectTokensOptions = {},
): Promise<TokenStatus[]> {
  const keyPrefix = options.keyPrefix ?? DEFAULT_TOKEN_CACHE_OPTIONS.keyPrefix;
  const timeoutMs = options.redisTimeoutMs ?? DEFAULT_TOKEN_CACHE_OPTIONS.redisTimeoutMs;

  const tokenIds = new Set<string>();
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    for await (const keys of node.scanStream({
      match: generationKeyPattern(keyPrefix),
      count: SCAN_COUNT,
    })) {
      for (const key of keys as string[]) {
        const tokenId = parseGenerationKey(keyPrefix, key);
        if (tokenId !== undefined) {
          tokenIds.add(tokenId);
        }
      }
    }
  }

  const statuses: TokenStatus[] = [];
  for (const tokenId of [...tokenIds].sort()) {
    const store = new RedisTokenStore(redis, buildTokenKeys(keyPrefix, tokenId), timeoutMs);
    statuses.push(await readTokenStatus(store, tokenId));
  }
  return statuses;
}

/** Reads the stored metadata of one token; `label` names it when the record has no label. */
export async function readTokenStatus(
  store: RedisTokenStore,
  tokenId: string,
  label?: string,
): Promise<TokenStatus> {
  const [stored, generationCounter] = await Promise.all([store.read(), store.currentGeneration()]);
  const record = stored.value === undefined ? undefined : decodeTokenRecord(stored.value);
  return {
    tokenId,
    label: record?.label ?? label,
    generationCounter,
    generation: record?.g,
    remainingMs: record === undefined ? undefined : stored.pttlMs,
    lifetimeMs: record?.l,
    refreshedAt: record?.t,
    reason: record?.r,
    cooldownMs: stored.cooldown === undefined ? 0 : Math.max(0, stored.cooldownPttlMs),
  };
}
