import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { hashToken, type MockOAuthServer, startMockOAuthServer } from '../src/index.js';
import {
  basicAuth,
  callResource,
  DEMO_CLIENT,
  fetchToken,
  postToken,
  quiqupBody,
} from './helpers.js';

const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

describe('token endpoint', () => {
  let server: MockOAuthServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  describe('when the request is valid', () => {
    it('issues a Quiqup-shaped bearer token for a JSON body', async () => {
      server = await startMockOAuthServer();
      const before = Math.floor(Date.now() / 1000);

      const response = await postToken(server);

      expect(response.status).toBe(200);
      expect(Object.keys(response.json).sort()).toEqual([
        'access_token',
        'created_at',
        'expires_in',
        'token_type',
      ]);
      expect(response.json.access_token).toMatch(/^[0-9a-f]{64}$/);
      expect(response.json.token_type).toBe('bearer');
      expect(response.json.expires_in).toBe(604_800);
      expect(response.json.created_at).toBeGreaterThanOrEqual(before);
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe('no-store');
    });

    it('accepts a form-encoded body', async () => {
      server = await startMockOAuthServer();
      const body = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: DEMO_CLIENT.clientId,
        client_secret: DEMO_CLIENT.clientSecret,
      }).toString();

      const response = await postToken(server, body, FORM);

      expect(response.status).toBe(200);
      expect(response.json.token_type).toBe('bearer');
    });

    it('accepts HTTP Basic client credentials', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, 'grant_type=client_credentials', {
        ...FORM,
        Authorization: basicAuth(DEMO_CLIENT.clientId, DEMO_CLIENT.clientSecret),
      });

      expect(response.status).toBe(200);
    });

    it('form-decodes Basic credentials as RFC 6749 requires', async () => {
      server = await startMockOAuthServer({
        clients: [{ clientId: 'team a', clientSecret: 's3cr:t+%' }],
      });
      const encoded = basicAuth(encodeURIComponent('team a'), encodeURIComponent('s3cr:t+%'));

      const response = await postToken(server, 'grant_type=client_credentials', {
        ...FORM,
        Authorization: encoded,
      });

      expect(response.status).toBe(200);
    });

    it('accepts a JSON body sent without a content type', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, quiqupBody(), {});

      expect(response.status).toBe(200);
    });

    it('issues a different token on every request', async () => {
      server = await startMockOAuthServer();

      const first = await fetchToken(server);
      const second = await fetchToken(server);

      expect(first).not.toBe(second);
      expect(server.issuedTokens().map((token) => token.tokenHash)).toEqual([
        hashToken(first),
        hashToken(second),
      ]);
    });

    it('accepts every configured client', async () => {
      server = await startMockOAuthServer({
        clients: [
          { clientId: 'fleet-a', clientSecret: 'secret-a' },
          { clientId: 'fleet-b', clientSecret: 'secret-b' },
        ],
      });

      const a = await postToken(
        server,
        quiqupBody({ client_id: 'fleet-a', client_secret: 'secret-a' }),
      );
      const b = await postToken(
        server,
        quiqupBody({ client_id: 'fleet-b', client_secret: 'secret-b' }),
      );
      const demo = await postToken(server);

      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      expect(demo.status).toBe(401);
      expect(server.issuedTokens().map((token) => token.clientId)).toEqual(['fleet-a', 'fleet-b']);
    });
  });

  describe('when the client is wrong', () => {
    it.each([
      ['an unknown client id', quiqupBody({ client_id: 'someone-else' })],
      ['a wrong secret', quiqupBody({ client_secret: 'wrong' })],
      ['no secret', quiqupBody({ client_secret: undefined })],
      ['no credentials', JSON.stringify({ grant_type: 'client_credentials' })],
    ])('responds with 401 invalid_client for %s', async (_case, body) => {
      server = await startMockOAuthServer();

      const response = await postToken(server, body);

      expect(response.status).toBe(401);
      expect(response.json.error).toBe('invalid_client');
      expect(typeof response.json.error_description).toBe('string');
      expect(response.text).not.toContain('demo-secret');
    });

    it('sends a Basic challenge for wrong Basic credentials', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, 'grant_type=client_credentials', {
        ...FORM,
        Authorization: basicAuth(DEMO_CLIENT.clientId, 'wrong'),
      });

      expect(response.status).toBe(401);
      expect(response.json.error).toBe('invalid_client');
      expect(response.headers.get('www-authenticate')).toBe('Basic realm="mock-oauth"');
    });

    it('rejects a secret sent by Basic and in the body', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, quiqupBody(), {
        'Content-Type': 'application/json',
        Authorization: basicAuth(DEMO_CLIENT.clientId, DEMO_CLIENT.clientSecret),
      });

      expect(response.status).toBe(400);
      expect(response.json.error).toBe('invalid_request');
    });

    it('counts the request but issues no token', async () => {
      server = await startMockOAuthServer();

      await postToken(server, quiqupBody({ client_secret: 'wrong' }));

      expect(server.counts().tokenRequests).toBe(1);
      expect(server.counts().tokenSuccesses).toBe(0);
      expect(server.issuedTokens()).toEqual([]);
    });
  });

  describe('when the grant type is wrong', () => {
    it('responds with 400 unsupported_grant_type', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, quiqupBody({ grant_type: 'password' }));

      expect(response.status).toBe(400);
      expect(response.json.error).toBe('unsupported_grant_type');
    });

    it('responds with 400 before checking the client', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(
        server,
        quiqupBody({ grant_type: 'authorization_code', client_secret: 'wrong' }),
      );

      expect(response.status).toBe(400);
      expect(response.json.error).toBe('unsupported_grant_type');
    });

    it('responds with 400 invalid_request when grant_type is missing', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, quiqupBody({ grant_type: undefined }));

      expect(response.status).toBe(400);
      expect(response.json.error).toBe('invalid_request');
    });
  });

  describe('when the request is malformed', () => {
    it('responds with 400 invalid_request for broken JSON', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, '{"grant_type":', {
        'Content-Type': 'application/json',
      });

      expect(response.status).toBe(400);
      expect(response.json.error).toBe('invalid_request');
    });

    it('responds with 413 for a body over 64 KiB', async () => {
      server = await startMockOAuthServer();

      const response = await postToken(server, `grant_type=${'x'.repeat(70_000)}`, FORM);

      expect(response.status).toBe(413);
      expect(response.json.error).toBe('invalid_request');
    });

    it('responds with 405 to a GET', async () => {
      server = await startMockOAuthServer();

      const response = await fetch(server.tokenUrl);

      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
      expect(server.counts().tokenRequests).toBe(0);
      await response.body?.cancel();
    });

    it('responds with 404 to an unknown path', async () => {
      server = await startMockOAuthServer();

      const response = await fetch(`${server.url}/oauth/authorize`);

      expect(response.status).toBe(404);
      await response.body?.cancel();
    });
  });

  describe('when a preset or lifetime is chosen', () => {
    it.each([
      [{}, 604_800],
      [{ preset: 'production' as const }, 604_800],
      [{ preset: 'staging' as const }, 3_600],
      [{ expiresIn: 90 }, 90],
      [{ expiresIn: 0.3 }, 0.3],
    ])('sends expires_in for %o', async (options, expected) => {
      server = await startMockOAuthServer(options);

      const response = await postToken(server);

      expect(response.json.expires_in).toBe(expected);
      expect(server.expiresIn).toBe(expected);
    });

    it('applies setExpiresIn to tokens issued afterwards', async () => {
      server = await startMockOAuthServer({ preset: 'staging' });
      const before = await fetchToken(server);

      server.setExpiresIn(42);
      const response = await postToken(server);

      expect(response.json.expires_in).toBe(42);
      expect(server.issuedTokens().map((token) => token.expiresIn)).toEqual([3_600, 42]);
      expect(server.isTokenActive(before)).toBe(true);
    });

    it('rejects a negative lifetime in setExpiresIn', async () => {
      server = await startMockOAuthServer();

      expect(() => server?.setExpiresIn(-1)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
      );
    });
  });

  describe('when a token expires', () => {
    it('stops accepting it after expires_in', async () => {
      server = await startMockOAuthServer({ expiresIn: 0.3 });
      const token = await fetchToken(server);

      const fresh = await callResource(server, token);
      expect(fresh.status).toBe(200);
      expect(server.isTokenActive(token)).toBe(true);

      await sleep(400);

      const expired = await callResource(server, token);
      expect(expired.status).toBe(401);
      expect(expired.json.error).toBe('invalid_token');
      expect(server.isTokenActive(token)).toBe(false);
      expect(server.issuedTokens()[0]).toMatchObject({
        active: false,
        revoked: false,
        remainingMs: 0,
      });
    });

    it('issues tokens that are already expired with expiresIn 0', async () => {
      server = await startMockOAuthServer({ expiresIn: 0 });
      const token = await fetchToken(server);

      expect(server.isTokenActive(token)).toBe(false);
      expect((await callResource(server, token)).status).toBe(401);
    });
  });

  describe('when counting', () => {
    it('counts token and resource requests by outcome', async () => {
      server = await startMockOAuthServer();
      const token = await fetchToken(server);
      await postToken(server, quiqupBody({ client_secret: 'wrong' }));
      await callResource(server, token);
      await callResource(server, token, 'POST');
      await callResource(server, 'not-a-token');
      await callResource(server);

      expect(server.counts()).toEqual({
        tokenRequests: 2,
        tokenSuccesses: 1,
        resourceRequests: 4,
        resourceOk: 2,
        resourceUnauthorized: 2,
      });
    });

    it('sets every counter to 0 on resetCounts', async () => {
      server = await startMockOAuthServer();
      const token = await fetchToken(server);
      await callResource(server, token);

      server.resetCounts();

      expect(server.counts()).toEqual({
        tokenRequests: 0,
        tokenSuccesses: 0,
        resourceRequests: 0,
        resourceOk: 0,
        resourceUnauthorized: 0,
      });
      expect(server.issuedTokens()).toHaveLength(1);
    });

    it('returns a copy that later requests do not change', async () => {
      server = await startMockOAuthServer();
      const snapshot = server.counts();

      await fetchToken(server);

      expect(snapshot.tokenRequests).toBe(0);
      expect(server.counts().tokenRequests).toBe(1);
    });
  });
});
