import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { invalidArgument } from './errors.js';

/** AES-256 takes a 32-byte key. */
const KEY_BYTES = 32;

/** 12 bytes is the IV length that GCM uses directly, without hashing it first (NIST SP 800-38D). */
const IV_BYTES = 12;

/** The full 16-byte GCM tag. `open` rejects shorter tags because they weaken the integrity check. */
const TAG_BYTES = 16;

/**
 * First field of every sealed string. A new format gets a new version, and `open` returns
 * `undefined` for a version it does not read.
 */
const FORMAT_VERSION = 'v1';

/**
 * Additional authenticated data: binds the ciphertext to this format, so a `v1` record cannot be
 * replayed under another version.
 */
const ASSOCIATED_DATA = Buffer.from(`tokenfleet.sealed.${FORMAT_VERSION}`, 'utf8');

/** HKDF salt: a fixed, public string that separates tokenfleet keys from other uses of the secret. */
const HKDF_SALT = 'tokenfleet sealing key v1';

/** HKDF info prefix. The token id follows it, so each token gets its own key. */
const HKDF_INFO_PREFIX = 'tokenfleet access token ';

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** A 32-byte AES-256-GCM key and the id that sealed strings carry to name it. */
export interface SealingKey {
  /** Short label stored in every sealed string: non-empty, without `.`. */
  id: string;
  /** The key itself: exactly 32 bytes. */
  key: Uint8Array;
}

/** Seals and opens access tokens for storage in Redis. */
export interface Sealer {
  /** Encrypts `plaintext` with the first key and returns `v1.<keyId>.<iv>.<tag>.<ciphertext>`. */
  seal(plaintext: string): string;
  /**
   * Decrypts a string from `seal`, trying every key. Returns `undefined`, and never throws, for
   * a malformed string, an unknown key or a ciphertext that fails authentication.
   */
  open(sealed: string): string | undefined;
}

/**
 * Derives the default sealing key of one token from the client secret with HKDF-SHA256. Every pod
 * that may refresh the token has the secret already, so no extra key has to be distributed, and
 * a rotated secret yields a new key (old records then fail to open and count as a cache miss).
 * The key id is the first 8 hex characters of SHA-256 over the derived key.
 */
export function deriveSealingKey(secret: string, tokenId: string): SealingKey {
  assertNonEmptyString(secret, 'secret');
  assertNonEmptyString(tokenId, 'tokenId');

  const key = new Uint8Array(
    hkdfSync('sha256', secret, HKDF_SALT, `${HKDF_INFO_PREFIX}${tokenId}`, KEY_BYTES),
  );
  const id = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return { id, key };
}

/**
 * Throws a `TypeError` (code `ERR_INVALID_ARG_TYPE` or `ERR_INVALID_ARG_VALUE`) unless `keys` is a
 * non-empty array of keys of exactly 32 bytes with distinct, non-empty ids that contain no `.`.
 * Messages name the array as `name`, such as `options.sealingKeys[1].key`.
 */
export function validateSealingKeys(keys: readonly SealingKey[], name = 'keys'): void {
  if (!Array.isArray(keys)) {
    throw invalidArgument('ERR_INVALID_ARG_TYPE', `"${name}" must be an array of sealing keys`);
  }
  if (keys.length === 0) {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"${name}" must contain at least one sealing key`,
    );
  }

  const seenIds = new Set<string>();
  keys.forEach((entry: SealingKey | undefined, index) => {
    const path = `${name}[${index}]`;
    if (typeof entry !== 'object' || entry === null) {
      throw invalidArgument('ERR_INVALID_ARG_TYPE', `"${path}" must be an object with id and key`);
    }
    assertNonEmptyString(entry.id, `${path}.id`);
    if (entry.id.includes('.')) {
      throw invalidArgument('ERR_INVALID_ARG_VALUE', `"${path}.id" must not contain "."`);
    }
    if (seenIds.has(entry.id)) {
      throw invalidArgument('ERR_INVALID_ARG_VALUE', `"${path}.id" repeats the id "${entry.id}"`);
    }
    seenIds.add(entry.id);
    if (!(entry.key instanceof Uint8Array)) {
      throw invalidArgument('ERR_INVALID_ARG_TYPE', `"${path}.key" must be a Uint8Array`);
    }
    if (entry.key.byteLength !== KEY_BYTES) {
      throw invalidArgument(
        'ERR_INVALID_ARG_VALUE',
        `"${path}.key" must be ${KEY_BYTES} bytes long (received ${entry.key.byteLength})`,
      );
    }
  });
}

/**
 * Creates a sealer over a key ring. The first key seals. `open` tries the key named in the sealed
 * string first and then every other key, so a ring of `[newKey, oldKey]` keeps old records
 * readable while new ones use the new key. The key bytes are copied, so later changes to the
 * caller's arrays have no effect.
 */
export function createSealer(keys: readonly SealingKey[]): Sealer {
  validateSealingKeys(keys);
  const ring = keys.map((entry) => ({ id: entry.id, key: Buffer.from(entry.key) }));
  const sealingKey = ring[0]!;

  return {
    seal(plaintext: string): string {
      if (typeof plaintext !== 'string') {
        throw invalidArgument('ERR_INVALID_ARG_TYPE', '"plaintext" must be a string');
      }

      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealingKey.key, iv, {
        authTagLength: TAG_BYTES,
      });
      cipher.setAAD(ASSOCIATED_DATA);
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();

      return [
        FORMAT_VERSION,
        sealingKey.id,
        iv.toString('base64url'),
        tag.toString('base64url'),
        ciphertext.toString('base64url'),
      ].join('.');
    },

    open(sealed: string): string | undefined {
      const parts = parseSealed(sealed);
      if (parts === undefined) {
        return undefined;
      }

      const named = ring.filter((entry) => entry.id === parts.keyId);
      const others = ring.filter((entry) => entry.id !== parts.keyId);
      for (const entry of [...named, ...others]) {
        const plaintext = decrypt(entry.key, parts);
        if (plaintext !== undefined) {
          return plaintext;
        }
      }
      return undefined;
    },
  };
}

interface SealedParts {
  keyId: string;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

function parseSealed(sealed: unknown): SealedParts | undefined {
  if (typeof sealed !== 'string') {
    return undefined;
  }

  const fields = sealed.split('.');
  if (fields.length !== 5) {
    return undefined;
  }
  const [version, keyId, iv, tag, ciphertext] = fields as [string, string, string, string, string];
  if (version !== FORMAT_VERSION || keyId === '') {
    return undefined;
  }
  // Buffer.from(..., 'base64url') skips characters outside the alphabet instead of failing.
  if (![iv, tag, ciphertext].every((field) => BASE64URL.test(field))) {
    return undefined;
  }

  const parts = {
    keyId,
    iv: Buffer.from(iv, 'base64url'),
    tag: Buffer.from(tag, 'base64url'),
    ciphertext: Buffer.from(ciphertext, 'base64url'),
  };
  if (parts.iv.length !== IV_BYTES || parts.tag.length !== TAG_BYTES) {
    return undefined;
  }
  return parts;
}

function decrypt(key: Buffer, parts: SealedParts): string | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, parts.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(ASSOCIATED_DATA);
    decipher.setAuthTag(parts.tag);
    const plaintext = Buffer.concat([decipher.update(parts.ciphertext), decipher.final()]);
    return plaintext.toString('utf8');
  } catch {
    // final() throws when the tag does not match: a wrong key or a tampered record.
    return undefined;
  }
}

function assertNonEmptyString(value: unknown, path: string): asserts value is string {
  if (typeof value !== 'string') {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      `"${path}" must be a non-empty string (received ${typeof value})`,
    );
  }
  if (value === '') {
    throw invalidArgument('ERR_INVALID_ARG_VALUE', `"${path}" must be a non-empty string`);
  }
}
