import { describe, expect, it } from 'vitest';
import { createAuthorizedFetch } from '../src/index.js';
import { uniquePrefix, useFaultFixture } from './endpoint-fault-fixture.js';

const fixture = useFaultFixture();

/** Collects the bearer tokens a wrapped fetch sends, to check that none is empty or invented. */
function recordBearerTokens(sent: string[]): typeof fetch {
  return (input, init) => {
    const authorization = new Headers(init?.headers).get('authorization') ?? '';
    sent.push(authorization.replace(/^Bearer /, ''));
    return globalThis.fetch(input, init);
  };
}

describe('createAuthorizedFetch with a token cache', () => {
  describe('when the resource rejects the cached token once', () => {
    it('invalidates it, fetches one token and retries', async () => {
      const prefix = uniquePrefix('fetch-401-once');
      const cache = fixture.newCache(prefix);
      const sent: string[] = [];
      const authorizedFetch = createAuthorizedFetch(cache, { fetch: recordBearerTokens(sent) });
      const stale = await fixture.getToken(cache);
      // Ends the token at the endpoint only, as an upstream that revoked it would.
      fixture.server.revokeTokens();
      fixture.server.resetCounts();

      const response = await authorizedFetch(fixture.server.resourceUrl);
      const fresh = await fixture.getToken(cache);

      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ orders: expect.any(Array) });
      expect(fixture.server.counts()).toMatchObject({
        tokenRequests: 1,
        resourceRequests: 2,
        resourceUnauthorized: 1,
        resourceOk: 1,
      });
      expect(fresh).not.toBe(stale);
      expect(sent).toEqual([stale, fresh]);
    });

    it('leaves the new token in Redis for the other pods', async () => {
      const prefix = uniquePrefix('fetch-401-fleet');
      const cache = fixture.newCache(prefix);
      const other = fixture.newCache(prefix);
      const authorizedFetch = createAuthorizedFetch(cache);
      await fixture.getToken(cache);
      await fixture.getToken(other);
      fixture.server.revokeTokens();
      fixture.server.resetCounts();

      await authorizedFetch(fixture.server.resourceUrl);
      const otherToken = await fixture.getToken(fixture.newCache(prefix));

      expect(fixture.server.isTokenActive(otherToken)).toBe(true);
      expect(fixture.server.counts().tokenRequests).toBe(1);
    });
  });

  describe('when the resource always answers 401', () => {
    it('returns the second 401 after two calls and one token request', async () => {
      const prefix = uniquePrefix('fetch-401-always');
      const cache = fixture.newCache(prefix);
      const sent: string[] = [];
      const authorizedFetch = createAuthorizedFetch(cache, { fetch: recordBearerTokens(sent) });
      await fixture.getToken(cache);
      fixture.server.setFaults({ resource: { alwaysUnauthorized: true } });
      fixture.server.resetCounts();

      const response = await authorizedFetch(fixture.server.resourceUrl, {
        method: 'POST',
        body: '{}',
      });

      expect(response.status).toBe(401);
      expect(fixture.server.counts()).toMatchObject({
        tokenRequests: 1,
        resourceRequests: 2,
        resourceUnauthorized: 2,
      });
      expect(sent).toHaveLength(2);
      for (const token of sent) {
        expect(fixture.tokens.has(token)).toBe(true);
      }
    });
  });

  describe('when the token endpoint fails after a 401', () => {
    it('rejects with the endpoint error and sends no second resource call', async () => {
      const prefix = uniquePrefix('fetch-401-endpoint-down');
      const cache = fixture.newCache(prefix);
      const authorizedFetch = createAuthorizedFetch(cache);
      await fixture.getToken(cache);
      fixture.server.revokeTokens();
      fixture.server.setFaults({ status: 503 });
      fixture.server.resetCounts();

      const error = await authorizedFetch(fixture.server.resourceUrl).catch((err: unknown) => err);

      expect(error).toMatchObject({ code: 'TOKENFLEET_TOKEN_ENDPOINT', status: 503 });
      expect(fixture.server.counts().resourceRequests).toBe(1);
      expect(await fixture.redis.exists(fixture.tokenKey(prefix, cache))).toBe(0);
    });
  });
});
