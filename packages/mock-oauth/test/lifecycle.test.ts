import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startMockOAuthServer } from '../src/index.js';
import { basicAuth, fetchToken, postToken, quiqupBody, rawPost, waitUntil } from './helpers.js';

describe('startMockOAuthServer', () => {
  it('listens on 127.0.0.1 on a free port by default', async () => {
    const server = await startMockOAuthServer();

    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
    expect(server.tokenUrl).toBe(`${server.url}/oauth/token`);
    expect(server.resourceUrl).toBe(`${server.url}/api/orders`);
    await server.close();
  });

  it('rejects when the port is taken', async () => {
    const first = await startMockOAuthServer();

    await expect(startMockOAuthServer({ port: first.port })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
    await first.close();
  });
});

describe('MockOAuthServer.close', () => {
  it('resolves during a noAnswer request and resets it', async () => {
    const server = await startMockOAuthServer();
    server.setFaults({ noAnswer: true });
    const hanging = rawPost(server.tokenUrl, quiqupBody());
    const outcome = hanging.then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code,
    );
    await waitUntil(() => server.counts().tokenRequests === 1);

    await server.close();

    expect(await outcome).toBe('ECONNRESET');
    expect(server.counts().tokenSuccesses).toBe(0);
  });

  it('resolves during a latencyMs wait and resets that request', async () => {
    const server = await startMockOAuthServer();
    server.setFaults({ latencyMs: 60_000 });
    const outcome = rawPost(server.tokenUrl, quiqupBody()).then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code,
    );
    await waitUntil(() => server.counts().tokenRequests === 1);

    await server.close();

    expect(await outcome).toBe('ECONNRESET');
    expect(server.issuedTokens()).toEqual([]);
  });

  it('stops accepting connections after a keep-alive request', async () => {
    const server = await startMockOAuthServer();
    await fetchToken(server);

    await server.close();

    await expect(fetch(server.tokenUrl, { method: 'POST' })).rejects.toThrow(TypeError);
  });

  it('returns the same promise when called twice', async () => {
    const server = await startMockOAuthServer();

    const first = server.close();
    const second = server.close();

    expect(second).toBe(first);
    await first;
  });
});

describe('logging', () => {
  it('logs through a mock-oauth child logger without tokens or secrets', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    const server = await startMockOAuthServer({ logger });

    const token = await fetchToken(server);
    await postToken(server, 'grant_type=client_credentials', {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: basicAuth('demo-client', 'wrong-secret'),
    });
    server.setFaults({ reuseToken: true });
    await fetchToken(server);
    await server.close();

    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries.map((entry) => entry.msg)).toEqual([
      'mock oauth server started',
      'token issued',
      'token request rejected',
      'faults set',
      'token reused',
      'mock oauth server closed',
    ]);
    expect(entries.every((entry) => entry.component === 'mock-oauth')).toBe(true);
    const text = lines.join('');
    expect(text).not.toContain(token);
    expect(text).not.toContain('demo-secret');
    expect(text).not.toContain('wrong-secret');
  });
});
