import { afterEach, describe, expect, it } from 'vitest';
import { hashToken, type MockOAuthServer, startMockOAuthServer } from '../src/index.js';
import { callResource, fetchToken, postToken, readResponse } from './helpers.js';

async function admin(
  server: MockOAuthServer,
  method: string,
  path: string,
  body?: unknown,
): ReturnType<typeof readResponse> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  return readResponse(await fetch(`${server.url}${path}`, init));
}

describe('admin endpoints', () => {
  let server: MockOAuthServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  describe('/__faults', () => {
    it('sets faults with POST and returns them', async () => {
      server = await startMockOAuthServer();

      const response = await admin(server, 'POST', '/__faults', { status: 503, times: 1 });
      const token = await postToken(server);

      expect(response.status).toBe(200);
      expect(response.json).toEqual({ status: 503, times: 1 });
      expect(token.status).toBe(503);
      expect((await postToken(server)).status).toBe(200);
    });

    it('returns the current faults with GET', async () => {
      server = await startMockOAuthServer();
      server.setFaults({
        rateLimit: { retryAfterSeconds: 7 },
        resource: { alwaysUnauthorized: true },
      });

      const response = await admin(server, 'GET', '/__faults');

      expect(response.json).toEqual({
        rateLimit: { retryAfterSeconds: 7 },
        resource: { alwaysUnauthorized: true },
      });
    });

    it('clears faults with DELETE', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 500 });

      const response = await admin(server, 'DELETE', '/__faults');

      expect(response.status).toBe(204);
      expect(server.currentFaults()).toEqual({});
    });

    it('rejects an invalid fault with 400, keeping the old', async () => {
      server = await startMockOAuthServer();
      server.setFaults({ status: 500 });

      const response = await admin(server, 'POST', '/__faults', { status: 'x' });

      expect(response.status).toBe(400);
      expect(response.json.error).toBe('invalid_request');
      expect(response.json.error_description).toBe(
        '"faults.status" must be a number, received \'x\'',
      );
      expect(server.currentFaults()).toEqual({ status: 500 });
    });

    it('responds with 400 for a body that is not JSON', async () => {
      server = await startMockOAuthServer();

      const response = await admin(server, 'POST', '/__faults', '{status');

      expect(response.status).toBe(400);
      expect(response.json.error_description).toBe('the request body is not valid JSON');
    });

    it('responds with 405 and Allow to another method', async () => {
      server = await startMockOAuthServer();

      const response = await admin(server, 'PATCH', '/__faults');

      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, POST, PUT, DELETE');
    });
  });

  describe('/__counts', () => {
    it('returns the counters with GET', async () => {
      server = await startMockOAuthServer();
      const token = await fetchToken(server);
      await callResource(server, token);

      const response = await admin(server, 'GET', '/__counts');

      expect(response.json).toEqual({
        tokenRequests: 1,
        tokenSuccesses: 1,
        resourceRequests: 1,
        resourceOk: 1,
        resourceUnauthorized: 0,
      });
    });

    it('sets every counter to 0 with POST /__counts/reset', async () => {
      server = await startMockOAuthServer();
      await fetchToken(server);

      const response = await admin(server, 'POST', '/__counts/reset');

      expect(response.status).toBe(204);
      expect(server.counts()).toEqual({
        tokenRequests: 0,
        tokenSuccesses: 0,
        resourceRequests: 0,
        resourceOk: 0,
        resourceUnauthorized: 0,
      });
    });

    it('does not count admin requests', async () => {
      server = await startMockOAuthServer();

      await admin(server, 'GET', '/__counts');
      await admin(server, 'GET', '/__faults');

      expect(server.counts().tokenRequests).toBe(0);
      expect(server.counts().resourceRequests).toBe(0);
    });
  });

  describe('/__expires-in', () => {
    it('sets the lifetime of new tokens with POST', async () => {
      server = await startMockOAuthServer();

      const response = await admin(server, 'POST', '/__expires-in', { expiresIn: 0.5 });
      const token = await postToken(server);

      expect(response.json).toEqual({ expiresIn: 0.5 });
      expect(token.json.expires_in).toBe(0.5);
    });

    it('returns the lifetime with GET', async () => {
      server = await startMockOAuthServer({ preset: 'staging' });

      const response = await admin(server, 'GET', '/__expires-in');

      expect(response.json).toEqual({ expiresIn: 3_600 });
    });

    it('responds with 400 for a lifetime that is not a number', async () => {
      server = await startMockOAuthServer();

      const response = await admin(server, 'POST', '/__expires-in', { expiresIn: '60' });

      expect(response.status).toBe(400);
      expect(response.json.error_description).toBe(
        '"expiresIn" must be a number of seconds, received \'60\'',
      );
      expect(server.expiresIn).toBe(604_800);
    });
  });

  describe('/__tokens', () => {
    it('lists issued tokens by hash, never the tokens', async () => {
      server = await startMockOAuthServer();
      const token = await fetchToken(server);

      const response = await admin(server, 'GET', '/__tokens');

      expect(response.text).not.toContain(token);
      expect(JSON.parse(response.text)).toEqual([
        expect.objectContaining({
          tokenHash: hashToken(token),
          clientId: 'demo-client',
          active: true,
        }),
      ]);
    });

    it('revokes one token given in the body', async () => {
      server = await startMockOAuthServer();
      const first = await fetchToken(server);
      const second = await fetchToken(server);

      const response = await admin(server, 'POST', '/__tokens/revoke', { token: first });

      expect(response.json).toEqual({ revoked: 1 });
      expect(server.isTokenActive(first)).toBe(false);
      expect(server.isTokenActive(second)).toBe(true);
    });

    it('revokes every token with POST /__tokens/revoke', async () => {
      server = await startMockOAuthServer();
      const token = await fetchToken(server);

      const response = await admin(server, 'POST', '/__tokens/revoke');

      expect(response.json).toEqual({ revoked: 1 });
      expect(server.isTokenActive(token)).toBe(false);
    });
  });

  it('responds with 404 for an unknown admin path', async () => {
    server = await startMockOAuthServer();

    const response = await admin(server, 'GET', '/__nothing');

    expect(response.status).toBe(404);
  });
});
