import { createHash } from 'node:crypto';

/** Number of hex characters of SHA-256 that make a token id. */
const TOKEN_ID_HEX_CHARS = 32;

/** Every Redis key and channel of one token; all share the hash tag `{id}` for Redis Cluster. */
export interface TokenKeys {
  /** The sealed token record, with a PX expiry. */
  token: string;
  /** The fencing counter, incremented once per token request, with no expiry. */
  generation: string;
  /** The fleet refresh lock. */
  lock: string;
  /** The fleet-wide back-off after a 429 or a rejected client. */
  cooldown: string;
  /** Pub/sub channel of `refreshed` and `invalidated` messages. */
  events: string;
}

/**
 * Computes the token id: the first 32 hex characters of SHA-256 over every parameter that changes
 * the token. Keys are sorted so that the order in which a provider lists them does not matter.
 */
export function computeTokenId(identity: Readonly<Record<string, string>>): string {
  const canonical = JSON.stringify(
    Object.keys(identity)
      .sort()
      .map((name) => [name, identity[name]]),
  );
  return createHash('sha256').update(canonical).digest('hex').slice(0, TOKEN_ID_HEX_CHARS);
}

/** Builds the keys of the token `tokenId` under `keyPrefix`. */
export function buildTokenKeys(keyPrefix: string, tokenId: string): TokenKeys {
  const base = `${keyPrefix}:{${tokenId}}`;
  return {
    token: `${base}:token`,
    generation: `${base}:generation`,
    lock: `${base}:lock`,
    cooldown: `${base}:cooldown`,
    events: `${base}:events`,
  };
}

/** SCAN pattern that matches the generation key of every token under `keyPrefix`. */
export function generationKeyPattern(keyPrefix: string): string {
  return `${keyPrefix}:{*}:generation`;
}

/** Extracts the token id from a generation key, or returns undefined for another key. */
export function parseGenerationKey(keyPrefix: string, key: string): string | undefined {
  const match = /^\{([0-9a-f]{32})\}:generation$/.exec(key.slice(keyPrefix.length + 1));
  if (!key.startsWith(`${keyPrefix}:`) || match === null) {
    return undefined;
  }
  return match[1];
}

/** SHA-256 of an access token, hex: how records and messages refer to a token without holding it. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
