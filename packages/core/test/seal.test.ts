import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createSealer,
  deriveSealingKey,
  type SealingKey,
  validateSealingKeys,
} from '../src/seal.js';

const SECRET = 'client-secret-0123456789';
const TOKEN_ID = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const ACCESS_TOKEN = '245c4749a7d1f00e335110';

function expectTypeError(action: () => unknown, code: string, message: string): void {
  expect(action).toThrow(expect.objectContaining({ name: 'TypeError', code, message }));
}

/** Replaces field `index` of a sealed string. */
function withField(sealed: string, index: number, value: string): string {
  const fields = sealed.split('.');
  fields[index] = value;
  return fields.join('.');
}

/** Flips the lowest bit of the first byte of a base64url field. */
function flipFirstByte(field: string): string {
  const bytes = Buffer.from(field, 'base64url');
  bytes[0] = bytes[0]! ^ 1;
  return bytes.toString('base64url');
}

describe('deriveSealingKey', () => {
  it('derives the same 32-byte key from the same inputs', () => {
    const first = deriveSealingKey(SECRET, TOKEN_ID);
    const second = deriveSealingKey(SECRET, TOKEN_ID);

    expect(first.key).toBeInstanceOf(Uint8Array);
    expect(first.key.byteLength).toBe(32);
    expect(Buffer.from(second.key).equals(Buffer.from(first.key))).toBe(true);
    expect(second.id).toBe(first.id);
  });

  it('names the key by the first 8 hex of its SHA-256', () => {
    const derived = deriveSealingKey(SECRET, TOKEN_ID);

    expect(derived.id).toMatch(/^[0-9a-f]{8}$/);
    expect(derived.id).toBe(createHash('sha256').update(derived.key).digest('hex').slice(0, 8));
  });

  it('derives another key for another token id or secret', () => {
    const base = Buffer.from(deriveSealingKey(SECRET, TOKEN_ID).key);
    const otherToken = Buffer.from(deriveSealingKey(SECRET, `${TOKEN_ID}x`).key);
    const otherSecret = Buffer.from(deriveSealingKey(`${SECRET}x`, TOKEN_ID).key);

    expect(otherToken.equals(base)).toBe(false);
    expect(otherSecret.equals(base)).toBe(false);
  });

  it('does not return the secret as the key', () => {
    const derived = deriveSealingKey(SECRET, TOKEN_ID);

    expect(Buffer.from(derived.key).includes(Buffer.from(SECRET))).toBe(false);
  });

  it.each([
    [['', TOKEN_ID], 'ERR_INVALID_ARG_VALUE', '"secret" must be a non-empty string'],
    [[SECRET, ''], 'ERR_INVALID_ARG_VALUE', '"tokenId" must be a non-empty string'],
    [
      [undefined, TOKEN_ID],
      'ERR_INVALID_ARG_TYPE',
      '"secret" must be a non-empty string (received undefined)',
    ],
  ])('throws for arguments %j', (args, code, message) => {
    expectTypeError(() => deriveSealingKey(...(args as [string, string])), code, message);
  });
});

describe('createSealer', () => {
  const key = deriveSealingKey(SECRET, TOKEN_ID);

  describe('when sealing and opening with one key', () => {
    it('opens what it sealed', () => {
      const sealer = createSealer([key]);

      expect(sealer.open(sealer.seal(ACCESS_TOKEN))).toBe(ACCESS_TOKEN);
    });

    it('round-trips an empty and a non-ASCII string', () => {
      const sealer = createSealer([key]);

      expect(sealer.open(sealer.seal(''))).toBe('');
      expect(sealer.open(sealer.seal('tökén ✓'))).toBe('tökén ✓');
    });

    it('writes v1.<keyId>.<iv>.<tag>.<ciphertext>', () => {
      const sealed = createSealer([key]).seal(ACCESS_TOKEN);
      const [version, keyId, iv, tag, ciphertext] = sealed.split('.');

      expect(sealed.split('.')).toHaveLength(5);
      expect(version).toBe('v1');
      expect(keyId).toBe(key.id);
      expect(Buffer.from(iv!, 'base64url')).toHaveLength(12);
      expect(Buffer.from(tag!, 'base64url')).toHaveLength(16);
      expect(Buffer.from(ciphertext!, 'base64url')).toHaveLength(ACCESS_TOKEN.length);
      expect(sealed).toMatch(/^v1\.[0-9a-f]{8}(\.[A-Za-z0-9_-]+){3}$/);
    });

    it('never contains the plaintext', () => {
      const sealed = createSealer([key]).seal(ACCESS_TOKEN);

      expect(sealed).not.toContain(ACCESS_TOKEN);
      expect(Buffer.from(sealed).includes(Buffer.from(ACCESS_TOKEN))).toBe(false);
    });

    it('uses a fresh IV for every seal', () => {
      const sealer = createSealer([key]);

      const first = sealer.seal(ACCESS_TOKEN);
      const second = sealer.seal(ACCESS_TOKEN);

      expect(second).not.toBe(first);
      expect(second.split('.')[2]).not.toBe(first.split('.')[2]);
    });
  });

  describe('when the sealed string is garbage', () => {
    const sealer = createSealer([key]);
    const sealed = sealer.seal(ACCESS_TOKEN);
    const [, , iv, tag, ciphertext] = sealed.split('.') as [string, string, string, string, string];

    it.each([
      ['an empty string', ''],
      ['a plain token', ACCESS_TOKEN],
      ['a version only', 'v1'],
      ['four fields', sealed.split('.').slice(0, 4).join('.')],
      ['six fields', `${sealed}.x`],
      ['another version', withField(sealed, 0, 'v2')],
      ['an empty key id', withField(sealed, 1, '')],
      ['characters outside base64url', withField(sealed, 4, `${ciphertext}+/=`)],
      ['a short IV', withField(sealed, 2, iv.slice(0, 8))],
      ['a short tag', withField(sealed, 3, tag.slice(0, 12))],
      ['an empty tag', withField(sealed, 3, '')],
      ['JSON', JSON.stringify({ token: ACCESS_TOKEN })],
    ])('returns undefined for %s', (_name, input) => {
      expect(sealer.open(input)).toBeUndefined();
    });

    it.each([null, undefined, 42, {}])('returns undefined for %j', (input) => {
      expect(sealer.open(input as never)).toBeUndefined();
    });
  });

  describe('when the sealed string was tampered with', () => {
    const sealer = createSealer([key]);
    const sealed = sealer.seal(ACCESS_TOKEN);
    const fields = sealed.split('.') as [string, string, string, string, string];

    it.each([
      ['the IV', 2],
      ['the tag', 3],
      ['the ciphertext', 4],
    ])('returns undefined for a changed %s', (_name, index) => {
      const tampered = withField(sealed, index, flipFirstByte(fields[index]!));

      expect(sealer.open(tampered)).toBeUndefined();
    });

    it('returns undefined for a truncated ciphertext', () => {
      const tampered = withField(
        sealed,
        4,
        Buffer.from(fields[4], 'base64url').subarray(1).toString('base64url'),
      );

      expect(sealer.open(tampered)).toBeUndefined();
    });
  });

  describe('when the key is wrong', () => {
    it('returns undefined', () => {
      const sealed = createSealer([key]).seal(ACCESS_TOKEN);
      const other = createSealer([deriveSealingKey('rotated-secret', TOKEN_ID)]);

      expect(other.open(sealed)).toBeUndefined();
    });

    it('returns undefined for a key that reuses the id', () => {
      const sealed = createSealer([key]).seal(ACCESS_TOKEN);
      const impostor = createSealer([{ id: key.id, key: randomBytes(32) }]);

      expect(impostor.open(sealed)).toBeUndefined();
    });
  });

  describe('when the ring holds several keys', () => {
    const oldKey: SealingKey = { id: 'old', key: randomBytes(32) };
    const newKey: SealingKey = { id: 'new', key: randomBytes(32) };

    it('seals with the first key', () => {
      const sealed = createSealer([newKey, oldKey]).seal(ACCESS_TOKEN);

      expect(sealed.split('.')[1]).toBe('new');
      expect(createSealer([newKey]).open(sealed)).toBe(ACCESS_TOKEN);
      expect(createSealer([oldKey]).open(sealed)).toBeUndefined();
    });

    it('opens a record sealed with an older key', () => {
      const sealed = createSealer([oldKey]).seal(ACCESS_TOKEN);

      expect(createSealer([newKey, oldKey]).open(sealed)).toBe(ACCESS_TOKEN);
    });

    it('opens a record whose key id was relabelled', () => {
      const sealed = createSealer([oldKey]).seal(ACCESS_TOKEN);
      const relabelled = createSealer([newKey, { id: 'renamed', key: oldKey.key }]);

      expect(relabelled.open(sealed)).toBe(ACCESS_TOKEN);
    });

    it('ignores later changes to the caller key bytes', () => {
      const bytes = Uint8Array.from(randomBytes(32));
      const sealer = createSealer([{ id: 'k', key: bytes }]);
      const sealed = sealer.seal(ACCESS_TOKEN);

      bytes.fill(0);

      expect(sealer.open(sealed)).toBe(ACCESS_TOKEN);
    });
  });
});

describe('validateSealingKeys', () => {
  const good = { id: 'k1', key: new Uint8Array(32) };

  it('accepts a ring of 32-byte keys', () => {
    expect(() => validateSealingKeys([good, { id: 'k2', key: new Uint8Array(32) }])).not.toThrow();
  });

  it.each([
    [
      'a 16-byte key',
      [{ id: 'k', key: new Uint8Array(16) }],
      'ERR_INVALID_ARG_VALUE',
      '"keys[0].key" must be 32 bytes long (received 16)',
    ],
    [
      'a 33-byte key',
      [good, { id: 'k', key: new Uint8Array(33) }],
      'ERR_INVALID_ARG_VALUE',
      '"keys[1].key" must be 32 bytes long (received 33)',
    ],
    [
      'a string key',
      [{ id: 'k', key: 'x'.repeat(32) }],
      'ERR_INVALID_ARG_TYPE',
      '"keys[0].key" must be a Uint8Array',
    ],
    ['an empty ring', [], 'ERR_INVALID_ARG_VALUE', '"keys" must contain at least one sealing key'],
    ['no array', good, 'ERR_INVALID_ARG_TYPE', '"keys" must be an array of sealing keys'],
    ['a null entry', [null], 'ERR_INVALID_ARG_TYPE', '"keys[0]" must be an object with id and key'],
    [
      'an empty id',
      [{ id: '', key: new Uint8Array(32) }],
      'ERR_INVALID_ARG_VALUE',
      '"keys[0].id" must be a non-empty string',
    ],
    [
      'an id with a dot',
      [{ id: 'a.b', key: new Uint8Array(32) }],
      'ERR_INVALID_ARG_VALUE',
      '"keys[0].id" must not contain "."',
    ],
    [
      'a repeated id',
      [good, { ...good }],
      'ERR_INVALID_ARG_VALUE',
      '"keys[1].id" repeats the id "k1"',
    ],
  ])('throws for %s', (_name, keys, code, message) => {
    expectTypeError(() => validateSealingKeys(keys as never), code, message);
    expectTypeError(() => createSealer(keys as never), code, message);
  });
});
