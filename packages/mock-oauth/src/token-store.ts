import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

/** Bytes of randomness in one access token; hex-encoded they give 64 characters. */
const TOKEN_BYTES = 32;

/** Server record of one issued access token. */
interface StoredToken {
  token: string;
  /** SHA-256 of the token, hex; the only form in which a token leaves the store. */
  tokenHash: string;
  clientId: string;
  /** Unix time in seconds when the token was issued, for `created_at`. */
  createdAt: number;
  /** The lifetime it was issued with, in seconds. */
  lifetimeSeconds: number;
  /** Monotonic time (`performance.now()`) after which the token is expired, in milliseconds. */
  expiresAtMs: number;
  revoked: boolean;
}

/** A token that the server issued, without the token itself. */
export interface IssuedTokenInfo {
  /** SHA-256 of the access token, 64 hex characters. */
  tokenHash: string;
  clientId: string;
  /** Unix time in seconds when the token was issued (its `created_at`). */
  createdAt: number;
  /** The lifetime it was issued with, in seconds. */
  expiresIn: number;
  /** Life left on the server's monotonic clock, in milliseconds; 0 once expired. */
  remainingMs: number;
  revoked: boolean;
  /** Neither revoked nor expired: the protected resource accepts it. */
  active: boolean;
}

/** A token handed out by the token endpoint, with the fields of its response. */
export interface GrantedToken {
  accessToken: string;
  tokenHash: string;
  createdAt: number;
  /** The `expires_in` to send: the full lifetime for a new token, the rest for a reused one. */
  expiresIn: number;
}

/**
 * Issues access tokens and tracks their expiry on the monotonic clock, so a change of the wall
 * clock never expires a token early or late.
 */
export class TokenStore {
  private readonly tokens = new Map<string, StoredToken>();
  /** Tokens in the order they were issued. */
  private readonly issued: StoredToken[] = [];

  /** Issues a new random token for `clientId` that lives `lifetimeSeconds`. */
  issue(clientId: string, lifetimeSeconds: number): GrantedToken {
    const token = randomBytes(TOKEN_BYTES).toString('hex');
    const stored: StoredToken = {
      token,
      tokenHash: hashToken(token),
      clientId,
      createdAt: Math.floor(Date.now() / 1000),
      lifetimeSeconds,
      expiresAtMs: performance.now() + lifetimeSeconds * 1000,
      revoked: false,
    };
    this.tokens.set(token, stored);
    this.issued.push(stored);

    return {
      accessToken: token,
      tokenHash: stored.tokenHash,
      createdAt: stored.createdAt,
      expiresIn: lifetimeSeconds,
    };
  }

  /**
   * Returns the newest active token of `clientId` again, with `expires_in` set to its remaining
   * life, as Doorkeeper does with token reuse on. Returns `undefined` when the client has none.
   */
  reuse(clientId: string): GrantedToken | undefined {
    const now = performance.now();
    const newest = this.issued.findLast(
      (stored) => stored.clientId === clientId && isActiveAt(stored, now),
    );
    if (newest === undefined) {
      return undefined;
    }

    return {
      accessToken: newest.token,
      tokenHash: newest.tokenHash,
      createdAt: newest.createdAt,
      expiresIn: remainingSeconds(newest, now),
    };
  }

  /** Revokes every token of `clientId` except `keepToken`. Returns how many were active before. */
  revokeOthers(clientId: string, keepToken: string): number {
    const now = performance.now();
    let revoked = 0;
    for (const stored of this.issued) {
      if (stored.clientId !== clientId || stored.token === keepToken) {
        continue;
      }
      if (isActiveAt(stored, now)) {
        revoked += 1;
      }
      stored.revoked = true;
    }
    return revoked;
  }

  /** Revokes `token`. Returns whether it was active before. */
  revoke(token: string): boolean {
    const stored = this.tokens.get(token);
    if (stored === undefined) {
      return false;
    }

    const wasActive = isActiveAt(stored, performance.now());
    stored.revoked = true;
    return wasActive;
  }

  /** Revokes every token. Returns how many were active before. */
  revokeAll(): number {
    const now = performance.now();
    let revoked = 0;
    for (const stored of this.issued) {
      if (isActiveAt(stored, now)) {
        revoked += 1;
      }
      stored.revoked = true;
    }
    return revoked;
  }

  /** Returns whether `token` was issued here and is neither revoked nor expired. */
  isActive(token: string): boolean {
    const stored = this.tokens.get(token);
    return stored !== undefined && isActiveAt(stored, performance.now());
  }

  /** Returns the state of every issued token, oldest first, without the tokens themselves. */
  list(): IssuedTokenInfo[] {
    const now = performance.now();
    return this.issued.map((stored) => ({
      tokenHash: stored.tokenHash,
      clientId: stored.clientId,
      createdAt: stored.createdAt,
      expiresIn: stored.lifetimeSeconds,
      remainingMs: Math.max(0, stored.expiresAtMs - now),
      revoked: stored.revoked,
      active: isActiveAt(stored, now),
    }));
  }
}

/** Returns the SHA-256 of an access token as hex, the form in which tokens may be logged. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function isActiveAt(stored: StoredToken, nowMs: number): boolean {
  return !stored.revoked && nowMs < stored.expiresAtMs;
}

/**
 * Returns the remaining life in seconds, rounded down so that it never claims more life than the
 * token has. A whole-second lifetime (the integer Quiqup sends) gives whole seconds. Any other
 * lifetime gives milliseconds, so that short test lifetimes such as 0.3 s still count down.
 */
function remainingSeconds(stored: StoredToken, nowMs: number): number {
  const remainingMs = Math.max(0, stored.expiresAtMs - nowMs);
  if (Number.isInteger(stored.lifetimeSeconds)) {
    return Math.floor(remainingMs / 1000);
  }
  return Math.floor(remainingMs) / 1000;
}
