import { afterEach, describe, expect, it } from 'vitest';
import { type MockOAuthServer, startMockOAuthServer } from '../src/index.js';
import { callResource, fetchToken } from './helpers.js';

describe('protected resource', () => {
  let server: MockOAuthServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('returns orders for an active token', async () => {
    server = await startMockOAuthServer();
    const token = await fetchToken(server);

    const response = await callResource(server, token);

    expect(response.status).toBe(200);
    expect(response.json).toEqual({
      orders: [
        { id: 'order-1001', state: 'delivered' },
        { id: 'order-1002', state: 'in_transit' },
      ],
    });
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH'])('accepts the %s method', async (method) => {
    server = await startMockOAuthServer();
    const token = await fetchToken(server);

    const response = await callResource(server, token, method);

    expect(response.status).toBe(200);
  });

  it('accepts the bearer scheme in any case', async () => {
    server = await startMockOAuthServer();
    const token = await fetchToken(server);

    const response = await fetch(server.resourceUrl, {
      headers: { Authorization: `BEARER ${token}` },
    });

    expect(response.status).toBe(200);
    await response.body?.cancel();
  });

  it('responds with 401 and no error code without a header', async () => {
    server = await startMockOAuthServer();

    const response = await callResource(server);

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="mock-oauth"');
  });

  it('responds with 401 invalid_token for an unknown token', async () => {
    server = await startMockOAuthServer();

    const response = await callResource(server, 'f'.repeat(64));

    expect(response.status).toBe(401);
    expect(response.json.error).toBe('invalid_token');
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="mock-oauth", error="invalid_token"',
    );
  });

  it('responds with 401 for another authorization scheme', async () => {
    server = await startMockOAuthServer();

    const response = await fetch(server.resourceUrl, { headers: { Authorization: 'Basic abc' } });

    expect(response.status).toBe(401);
    await response.body?.cancel();
  });

  it('rejects only the token given to revokeToken', async () => {
    server = await startMockOAuthServer();
    const first = await fetchToken(server);
    const second = await fetchToken(server);

    expect(server.revokeToken(first)).toBe(true);
    expect(server.revokeToken(first)).toBe(false);
    expect(server.revokeToken('unknown')).toBe(false);
    expect((await callResource(server, first)).status).toBe(401);
    expect((await callResource(server, second)).status).toBe(200);
  });

  it('responds with 401 after revokeTokens', async () => {
    server = await startMockOAuthServer();
    const first = await fetchToken(server);
    const second = await fetchToken(server);

    const revoked = server.revokeTokens();

    expect(revoked).toBe(2);
    expect((await callResource(server, first)).status).toBe(401);
    expect((await callResource(server, second)).status).toBe(401);
    expect(server.issuedTokens().map((token) => token.revoked)).toEqual([true, true]);
  });
});
