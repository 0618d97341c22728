// A pod paused past its lock must not store its older token after the newer record expired or
// was invalidated: with an upstream that revokes the previous token on each new one, that older
// token is already revoked.
import { createTokenCache, type TokenProvider } from '@tokenfleet/core';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_SECRET,
  mockProvider,
  uniquePrefix,
  useReviewEnvironment,
} from './review-helpers.js';

const env = useReviewEnvironment();

/**
 * The mock provider, paused between the token response and the return of requestToken(): what a
 * pod frozen by GC, SIGSTOP or a VM pause looks like to the rest of the fleet.
 */
function pausedProvider(gate: Promise<void>): TokenProvider {
  const base = mockProvider(env.server);
  return {
    name: base.name,
    identity: base.identity,
    label: base.label,
    sealingSecret: CLIENT_SECRET,
    async requestToken(context) {
      const grant = await base.requestToken(context);
      await gate;
      return grant;
    },
  };
}

describe('a pod paused past its lock while the newer token is invalidated', () => {
  it('does not store its older, revoked token', async () => {
    env.server.setFaults({ revokePrevious: true });
    const prefix = uniquePrefix('review-fencing');
    let resume = (): void => {};
    const gate = new Promise<void>((resolve) => {
      resume = resolve;
    });
    const options = { redis: env.redisServer.url, keyPrefix: prefix, requestTimeoutMs: 500 };
    const paused = createTokenCache({
      ...options,
      lockTtlMs: 1_600,
      provider: pausedProvider(gate),
    });
    const other = createTokenCache({ ...options, provider: mockProvider(env.server) });
    env.track(paused, other);

    // Generation 1: the token response arrives, then the pod stalls past its lock TTL.
    const late = paused.getTokenInfo();
    await new Promise((resolve) => setTimeout(resolve, 1_800));
    // Generation 2: the other pod refreshes (revoking generation 1's token) and a 401 for that
    // new token, or an operator, invalidates it.
    const newer = await other.getTokenInfo();
    expect(newer.generation).toBe(2);
    await other.invalidate(newer.token);

    resume();
    await late;
    const served = await other.getToken();
    const stored = await env.redis.get(`${prefix}:{${other.id}}:token`);

    const storedGeneration = stored === null ? undefined : (JSON.parse(stored) as { g: number }).g;

    expect({
      olderGenerationStored: storedGeneration === 1,
      servedIsActive: env.server.isTokenActive(served),
    }).toEqual({ olderGenerationStored: false, servedIsActive: true });
  }, 20_000);
});
