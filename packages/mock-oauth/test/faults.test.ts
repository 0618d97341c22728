import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type MockOAuthServer, startMockOAuthServer } from '../src/index.js';
import { callResource, fetchToken, postToken, quiqupBody, rawPost, waitUntil } from './helpers.js';

describe('token endpoint faults', () => {
  let server: MockOAuthServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  describe('when latencyMs is set', () => {
    it('delays the response, then issues a token', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ latencyMs: 500 });

      const pending = postToken(server);
      await waitUntil(() => server?.counts().tokenRequests === 1);
      const duringDelay = server.counts().tokenSuccesses;
      const response = await pending;

      expect(duringDelay).toBe(0);
      expect(response.status).toBe(200);
      expect(server.counts().tokenSuccesses).toBe(1);
    });
  });

  describe('when status is set alone', () => {
    it.each([
      [500, 'server_error'],
      [502, 'server_error'],
      [503, 'temporarily_unavailable'],
      [400, 'invalid_request'],
      [401, 'invalid_client'],
      [404, 'invalid_request'],
    ])('responds with %i with OAuth2 error %s', async (status, error) => {
      server = await startMockOAuthServer();
      server.setFaults({ status });

      const response = await postToken(server);

      expect(response.status).toBe(status);
      expect(response.json.error).toBe(error);
      expect(server.counts().tokenSuccesses).toBe(0);
      expect(server.issuedTokens()).toEqual([]);
    });

    it('sends a normal token with a 2xx status', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 201 });

      const response = await postToken(server);

      expect(response.status).toBe(201);
      expect(response.json.access_token).toMatch(/^[0-9a-f]{64}$/);
      expect(server.counts().tokenSuccesses).toBe(1);
    });
  });

  describe('when htmlBody is set', () => {
    it('sends the built-in 5 KB page with the given status', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 502, htmlBody: true });

      const response = await postToken(server);

      expect(response.status).toBe(502);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.text.startsWith('<!DOCTYPE html>')).toBe(true);
      expect(response.text).toContain('502');
      expect(response.text.length).toBeGreaterThan(4_900);
      expect(response.text.length).toBeLessThanOrEqual(5_120);
    });

    it('sends a given page with status 200 by default', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ htmlBody: '<html><body>Please log in</body></html>' });

      const response = await postToken(server);

      expect(response.status).toBe(200);
      expect(response.text).toBe('<html><body>Please log in</body></html>');
    });
  });

  describe('when rateLimit is set', () => {
    it('responds with 429 and Retry-After', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ rateLimit: { retryAfterSeconds: 30 } });

      const response = await postToken(server);

      expect(response.status).toBe(429);
      expect(response.headers.get('retry-after')).toBe('30');
      expect(response.json.error).toBe('rate_limited');
      expect(server.counts().tokenSuccesses).toBe(0);
    });
  });

  describe('when body is set', () => {
    it('sends a string body as is with status 200', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ body: '{"access_token":""}' });

      const response = await postToken(server);

      expect(response.status).toBe(200);
      expect(response.text).toBe('{"access_token":""}');
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(server.counts().tokenSuccesses).toBe(0);
    });

    it('serialises an object body and uses the given status and content type', async () => {
      server = await startMockOAuthServer();
      server.setFaults({
        body: { access_token: 'abc', expires_in: 'abc', token_type: 'bearer' },
        status: 500,
        contentType: 'text/plain',
      });

      const response = await postToken(server);

      expect(response.status).toBe(500);
      expect(response.text).toBe('{"access_token":"abc","expires_in":"abc","token_type":"bearer"}');
      expect(response.headers.get('content-type')).toBe('text/plain');
    });
  });

  describe('when overrideFields or omitFields is set', () => {
    it('changes fields of a real token response', async () => {
      server = await startMockOAuthServer({ preset: 'staging' });
      server.setFaults({ overrideFields: { expires_in: '3600', token_type: 'Bearer' } });

      const response = await postToken(server);

      expect(response.json.expires_in).toBe('3600');
      expect(response.json.token_type).toBe('Bearer');
      expect(server.isTokenActive(response.json.access_token as string)).toBe(true);
    });

    it('removes fields from a real token response', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ omitFields: ['expires_in', 'created_at'] });

      const response = await postToken(server);

      expect(Object.keys(response.json).sort()).toEqual(['access_token', 'token_type']);
    });
  });

  describe('when reuseToken is set', () => {
    it('hands back the same token with expires_in counting down', async () => {
      server = await startMockOAuthServer({ expiresIn: 10 });
      server.setFaults({ reuseToken: true });
      const first = await postToken(server);

      await sleep(1_100);
      const second = await postToken(server);

      expect(second.json.access_token).toBe(first.json.access_token);
      expect(second.json.created_at).toBe(first.json.created_at);
      expect(first.json.expires_in).toBe(10);
      expect(second.json.expires_in).toBe(8);
      expect(server.issuedTokens()).toHaveLength(1);
      expect(server.counts().tokenSuccesses).toBe(2);
    });

    it('counts down in milliseconds for a fractional lifetime', async () => {
      server = await startMockOAuthServer({ expiresIn: 5.5 });
      server.setFaults({ reuseToken: true });
      await postToken(server);

      const second = await postToken(server);

      expect(second.json.expires_in).toBeLessThan(5.5);
      expect(second.json.expires_in).toBeGreaterThan(0);
      expect(Number.isInteger((second.json.expires_in as number) * 1000)).toBe(true);
    });

    it('issues a new token once the old one expired', async () => {
      server = await startMockOAuthServer({ expiresIn: 0.2 });
      server.setFaults({ reuseToken: true });
      const first = await fetchToken(server);

      await sleep(300);
      const second = await postToken(server);

      expect(second.json.access_token).not.toBe(first);
      expect(second.json.expires_in).toBe(0.2);
      expect(server.issuedTokens()).toHaveLength(2);
    });

    it('reuses only a token of the same client', async () => {
      server = await startMockOAuthServer({
        clients: [
          { clientId: 'demo-client', clientSecret: 'demo-secret' },
          { clientId: 'other', clientSecret: 'other-secret' },
        ],
      });
      server.setFaults({ reuseToken: true });
      const demo = await fetchToken(server);

      const other = await postToken(
        server,
        quiqupBody({ client_id: 'other', client_secret: 'other-secret' }),
      );

      expect(other.json.access_token).not.toBe(demo);
    });
  });

  describe('when revokePrevious is set', () => {
    it('revokes every earlier token of the client', async () => {
      server = await startMockOAuthServer();
      const first = await fetchToken(server);
      const second = await fetchToken(server);
      server.setFaults({ revokePrevious: true });

      const third = await fetchToken(server);

      expect(server.isTokenActive(first)).toBe(false);
      expect(server.isTokenActive(second)).toBe(false);
      expect(server.isTokenActive(third)).toBe(true);
      expect((await callResource(server, second)).status).toBe(401);
      expect((await callResource(server, third)).status).toBe(200);
      expect(server.issuedTokens().map((token) => token.revoked)).toEqual([true, true, false]);
    });

    it('keeps the tokens of other clients', async () => {
      server = await startMockOAuthServer({
        clients: [
          { clientId: 'demo-client', clientSecret: 'demo-secret' },
          { clientId: 'other', clientSecret: 'other-secret' },
        ],
      });
      const other = await postToken(
        server,
        quiqupBody({ client_id: 'other', client_secret: 'other-secret' }),
      );
      server.setFaults({ revokePrevious: true });

      await fetchToken(server);

      expect(server.isTokenActive(other.json.access_token as string)).toBe(true);
    });
  });

  describe('when resetConnection is set', () => {
    it('destroys the socket without a response', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ resetConnection: true });

      await expect(rawPost(server.tokenUrl, quiqupBody())).rejects.toMatchObject({
        code: 'ECONNRESET',
      });
      expect(server.counts().tokenRequests).toBe(1);
      expect(server.counts().tokenSuccesses).toBe(0);
    });
  });

  describe('when noAnswer is set', () => {
    it('keeps the request open while other endpoints respond', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ noAnswer: true, times: 1 });

      const hanging = rawPost(server.tokenUrl, quiqupBody());
      hanging.catch(() => undefined);
      await waitUntil(() => server?.counts().tokenRequests === 1);
      const next = await postToken(server);

      expect(next.status).toBe(200);
      expect(server.counts()).toMatchObject({ tokenRequests: 2, tokenSuccesses: 1 });
    });
  });

  describe('when times is set', () => {
    it('applies the faults to the next N token requests only', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 503, times: 2 });

      const first = await postToken(server);
      const remaining = server.currentFaults();
      const second = await postToken(server);
      const third = await postToken(server);

      expect([first.status, second.status, third.status]).toEqual([503, 503, 200]);
      expect(remaining).toEqual({ status: 503, times: 1 });
      expect(server.currentFaults()).toEqual({});
    });

    it('keeps resource faults after the token faults clear', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 500, times: 1, resource: { alwaysUnauthorized: true } });

      await postToken(server);
      const token = await fetchToken(server);

      expect(server.currentFaults()).toEqual({ resource: { alwaysUnauthorized: true } });
      expect((await callResource(server, token)).status).toBe(401);
    });
  });

  describe('when resource.alwaysUnauthorized is set', () => {
    it('rejects active tokens until the faults clear', async () => {
      server = await startMockOAuthServer();
      const token = await fetchToken(server);
      server.setFaults({ resource: { alwaysUnauthorized: true } });

      const rejected = await callResource(server, token);
      server.clearFaults();
      const accepted = await callResource(server, token);

      expect(rejected.status).toBe(401);
      expect(rejected.json.error).toBe('invalid_token');
      expect(accepted.status).toBe(200);
      expect(server.counts()).toMatchObject({ resourceOk: 1, resourceUnauthorized: 1 });
    });
  });

  describe('when faults are replaced or cleared', () => {
    it('replaces every earlier fault on setFaults', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 500, resource: { alwaysUnauthorized: true } });

      server.setFaults({ latencyMs: 1 });

      expect(server.currentFaults()).toEqual({ latencyMs: 1 });
    });

    it('responds normally after clearFaults', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 500 });

      server.clearFaults();

      expect((await postToken(server)).status).toBe(200);
      expect(server.currentFaults()).toEqual({});
    });

    it('does not change when the caller mutates its faults object', async () => {
      server = await startMockOAuthServer();
      const faults = { overrideFields: { expires_in: 'abc' } as Record<string, unknown> };
      server.setFaults(faults);

      faults.overrideFields.expires_in = 1;

      expect(server.currentFaults()).toEqual({ overrideFields: { expires_in: 'abc' } });
    });
  });
});
