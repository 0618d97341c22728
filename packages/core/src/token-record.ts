import type { RefreshReason } from './token-cache-types.js';

/** Version of the stored record format; a record of another version is a cache miss. */
const RECORD_VERSION = 1;

const REFRESH_REASONS: ReadonlySet<string> = new Set<RefreshReason>([
  'missing',
  'refresh-ahead',
  'forced',
  'renewal',
  'invalidated',
]);

/**
 * The JSON value of `<prefix>:{id}:token`. Short field names keep the value small; the fenced
 * write script reads `g` and the invalidation script reads `h`, so those two names are fixed.
 */
export interface TokenRecord {
  v: typeof RECORD_VERSION;
  /** Generation that wrote the record. */
  g: number;
  /** The access token sealed with AES-256-GCM (see seal.ts). */
  s: string;
  /** SHA-256 of the access token, hex, for the compare-and-delete of `invalidate()`. */
  h: string;
  /** Stored life (the PX of the write), in milliseconds: the base of the refresh-ahead margin. */
  l: number;
  /** Why the refresh ran. */
  r: RefreshReason;
  /** For a renewal: the generation it replaced, so a second delivery of that job can tell. */
  rg?: number;
  /** Wall-clock time of the write, ms since the epoch; shown by status, never used for expiry. */
  t: number;
  /** True when the endpoint returned the previous token again: no refresh ahead for it. */
  same?: boolean;
  /** Provider label, safe to show. */
  label?: string;
}

export type NewTokenRecord = Omit<TokenRecord, 'v'>;

/** Serializes a record for the fenced write. */
export function encodeTokenRecord(record: NewTokenRecord): string {
  return JSON.stringify({ v: RECORD_VERSION, ...record });
}

/**
 * Parses a stored value. Returns undefined for anything that is not a well-formed record of this
 * version, so garbage in the key is a cache miss, never a crash.
 */
export function decodeTokenRecord(value: string): TokenRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') {
    return undefined;
  }

  const record = parsed as Partial<TokenRecord>;
  const valid =
    record.v === RECORD_VERSION &&
    Number.isSafeInteger(record.g) &&
    typeof record.s === 'string' &&
    typeof record.h === 'string' &&
    Number.isSafeInteger(record.l) &&
    (record.l as number) > 0 &&
    typeof record.r === 'string' &&
    REFRESH_REASONS.has(record.r) &&
    Number.isFinite(record.t) &&
    (record.rg === undefined || Number.isSafeInteger(record.rg));
  return valid ? (record as TokenRecord) : undefined;
}
