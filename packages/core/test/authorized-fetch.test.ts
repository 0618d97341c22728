import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAuthorizedFetch } from '../src/authorized-fetch.js';

interface ResourceRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A protected resource on 127.0.0.1 that responds to each request with the next scripted status. */
class ResourceServer {
  readonly requests: ResourceRequest[] = [];
  /** Statuses for the next requests; 200 once the script is used up. */
  statuses: number[] = [];
  private readonly server: Server;

  constructor() {
    this.server = createServer((incoming, response) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        this.requests.push({
          method: incoming.method ?? '',
          url: incoming.url ?? '',
          headers: incoming.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        const status = this.statuses.shift() ?? 200;
        response.writeHead(status, { 'content-type': 'text/plain' });
        response.end(`status ${status} for request ${this.requests.length}`);
      });
    });
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/orders`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  reset(): void {
    this.requests.length = 0;
    this.statuses = [];
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      this.server.close((error) => (error ? reject(error) : resolve())),
    );
  }
}

/** Hands out `token-1`, `token-2`, … and moves on to the next token after each invalidate. */
class FakeCache {
  generation = 1;
  getTokenCalls = 0;
  readonly invalidated: string[] = [];

  async getToken(): Promise<string> {
    this.getTokenCalls += 1;
    return `token-${this.generation}`;
  }

  async invalidate(token: string): Promise<boolean> {
    this.invalidated.push(token);
    const matched = token === `token-${this.generation}`;
    if (matched) {
      this.generation += 1;
    }
    return matched;
  }
}

const resource = new ResourceServer();

beforeAll(async () => {
  await resource.listen();
});

afterEach(() => {
  resource.reset();
});

afterAll(async () => {
  await resource.close();
});

describe('createAuthorizedFetch', () => {
  describe('when the first response is not 401', () => {
    it('sends the bearer token once', async () => {
      const cache = new FakeCache();
      const authorizedFetch = createAuthorizedFetch(cache);

      const response = await authorizedFetch(resource.url);

      expect(response.status).toBe(200);
      expect(await response.text()).toBe('status 200 for request 1');
      expect(resource.requests).toHaveLength(1);
      expect(resource.requests[0]!.headers.authorization).toBe('Bearer token-1');
      expect(cache.getTokenCalls).toBe(1);
      expect(cache.invalidated).toEqual([]);
    });

    it('returns a 403 without a retry', async () => {
      const cache = new FakeCache();
      resource.statuses = [403];

      const response = await createAuthorizedFetch(cache)(resource.url);

      expect(response.status).toBe(403);
      expect(resource.requests).toHaveLength(1);
      expect(cache.invalidated).toEqual([]);
    });
  });

  describe('when the caller passes headers', () => {
    it.each([
      ['a plain object', { 'x-request-id': 'r-1', accept: 'application/json' }],
      [
        'an array',
        [
          ['x-request-id', 'r-1'],
          ['accept', 'application/json'],
        ],
      ],
      ['a Headers object', new Headers({ 'x-request-id': 'r-1', accept: 'application/json' })],
    ])('keeps the headers of %s', async (_name, headers) => {
      const authorizedFetch = createAuthorizedFetch(new FakeCache());

      await authorizedFetch(resource.url, { headers: headers as RequestInit['headers'] });

      const [request] = resource.requests;
      expect(request!.headers['x-request-id']).toBe('r-1');
      expect(request!.headers.accept).toBe('application/json');
      expect(request!.headers.authorization).toBe('Bearer token-1');
    });

    it('keeps the headers and method of a Request', async () => {
      const authorizedFetch = createAuthorizedFetch(new FakeCache());
      const request = new Request(resource.url, {
        method: 'DELETE',
        headers: { 'x-request-id': 'r-2' },
      });

      await authorizedFetch(request);

      expect(resource.requests[0]!.method).toBe('DELETE');
      expect(resource.requests[0]!.headers['x-request-id']).toBe('r-2');
      expect(resource.requests[0]!.headers.authorization).toBe('Bearer token-1');
    });

    it('replaces the caller Authorization header', async () => {
      const authorizedFetch = createAuthorizedFetch(new FakeCache());

      await authorizedFetch(resource.url, { headers: { authorization: 'Basic abc' } });

      expect(resource.requests[0]!.headers.authorization).toBe('Bearer token-1');
    });

    it('does not change the caller headers object', async () => {
      const headers = new Headers({ 'x-request-id': 'r-3' });
      const authorizedFetch = createAuthorizedFetch(new FakeCache());

      await authorizedFetch(resource.url, { headers });

      expect(headers.has('authorization')).toBe(false);
    });
  });

  describe('when the first response is 401', () => {
    it('invalidates the old token and retries once with a new one', async () => {
      const cache = new FakeCache();
      resource.statuses = [401, 200];

      const response = await createAuthorizedFetch(cache)(resource.url);

      expect(response.status).toBe(200);
      expect(await response.text()).toBe('status 200 for request 2');
      expect(resource.requests).toHaveLength(2);
      expect(resource.requests.map((request) => request.headers.authorization)).toEqual([
        'Bearer token-1',
        'Bearer token-2',
      ]);
      expect(cache.invalidated).toEqual(['token-1']);
      expect(cache.getTokenCalls).toBe(2);
    });

    it('returns the second 401 to the caller', async () => {
      const cache = new FakeCache();
      resource.statuses = [401, 401, 401];

      const response = await createAuthorizedFetch(cache)(resource.url);

      expect(response.status).toBe(401);
      expect(await response.text()).toBe('status 401 for request 2');
      expect(resource.requests).toHaveLength(2);
      expect(cache.invalidated).toEqual(['token-1']);
    });

    it('cancels the body of the first 401', async () => {
      const responses: Response[] = [];
      const recordingFetch: typeof fetch = async (input, init) => {
        const response = await fetch(input, init);
        responses.push(response);
        return response;
      };
      resource.statuses = [401, 200];

      await createAuthorizedFetch(new FakeCache(), { fetch: recordingFetch })(resource.url);

      expect(responses).toHaveLength(2);
      expect(responses[0]!.bodyUsed).toBe(true);
      expect(responses[1]!.bodyUsed).toBe(false);
    });

    it.each([
      ['a string', () => 'id=7&state=packed', 'id=7&state=packed'],
      ['URLSearchParams', () => new URLSearchParams({ id: '7' }), 'id=7'],
      ['a Uint8Array', () => new TextEncoder().encode('{"id":7}'), '{"id":7}'],
      ['a Blob', () => new Blob(['{"id":7}']), '{"id":7}'],
    ])('sends a body of %s again', async (_name, makeBody, expected) => {
      resource.statuses = [401, 200];

      const response = await createAuthorizedFetch(new FakeCache())(resource.url, {
        method: 'POST',
        body: makeBody(),
      });

      expect(response.status).toBe(200);
      expect(resource.requests.map((request) => request.body)).toEqual([expected, expected]);
      expect(resource.requests.map((request) => request.method)).toEqual(['POST', 'POST']);
    });

    it('does not retry a ReadableStream body', async () => {
      const cache = new FakeCache();
      resource.statuses = [401, 200];
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('streamed'));
          controller.close();
        },
      });

      const response = await createAuthorizedFetch(cache)(resource.url, {
        method: 'POST',
        body,
        duplex: 'half',
      } as RequestInit);

      expect(response.status).toBe(401);
      expect(await response.text()).toBe('status 401 for request 1');
      expect(resource.requests).toHaveLength(1);
      expect(resource.requests[0]!.body).toBe('streamed');
      expect(cache.invalidated).toEqual(['token-1']);
      expect(cache.getTokenCalls).toBe(1);
    });

    it('does not retry a Request that carries a body', async () => {
      const cache = new FakeCache();
      resource.statuses = [401, 200];
      const request = new Request(resource.url, { method: 'PUT', body: 'payload' });

      const response = await createAuthorizedFetch(cache)(request);

      expect(response.status).toBe(401);
      expect(resource.requests).toHaveLength(1);
      expect(resource.requests[0]!.body).toBe('payload');
      expect(cache.invalidated).toEqual(['token-1']);
    });

    it('retries a Request whose body is replaced by init', async () => {
      resource.statuses = [401, 200];
      const request = new Request(resource.url, { method: 'PUT', body: 'original' });

      const response = await createAuthorizedFetch(new FakeCache())(request, {
        body: 'replacement',
      });

      expect(response.status).toBe(200);
      expect(resource.requests.map((entry) => entry.body)).toEqual(['replacement', 'replacement']);
    });

    it('retries a Request without a body', async () => {
      resource.statuses = [401, 200];

      const response = await createAuthorizedFetch(new FakeCache())(new Request(resource.url));

      expect(response.status).toBe(200);
      expect(resource.requests).toHaveLength(2);
    });
  });

  describe('when the cache fails', () => {
    it('rejects with the getToken error and sends nothing', async () => {
      const failure = new Error('no token');
      const cache = {
        getToken: () => Promise.reject(failure),
        invalidate: () => Promise.resolve(true),
      };

      await expect(createAuthorizedFetch(cache)(resource.url)).rejects.toBe(failure);
      expect(resource.requests).toHaveLength(0);
    });
  });

  describe('when the cache argument is invalid', () => {
    it('throws a TypeError', () => {
      expect(() => createAuthorizedFetch({} as never)).toThrow(
        expect.objectContaining({
          name: 'TypeError',
          code: 'ERR_INVALID_ARG_TYPE',
          message: '"cache" must have getToken() and invalidate() methods, such as a TokenCache',
        }),
      );
    });
  });
});
