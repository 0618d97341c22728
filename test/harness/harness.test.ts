import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import {
  killAll,
  pingPort,
  runWorkers,
  type SpawnedRedisServer,
  spawnRedisServer,
  startRedis,
  startWorker,
  uniquePrefix,
  waitFor,
} from './index.js';

const ECHO_WORKER = new URL('./fixtures/echo-worker.ts', import.meta.url);

interface EchoResult {
  index: number;
  count: number;
  pid: number;
  args: string[];
  greeting: string;
  redisUrl: string;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterEach(async () => {
  await killAll();
  vi.unstubAllEnvs();
});

describe('runWorkers', () => {
  it('collects one result per worker in index order', async () => {
    const results = await runWorkers<EchoResult>({
      script: ECHO_WORKER,
      count: 3,
      args: (index) => ['echo', `arg-${index}`],
      env: { GREETING: 'hello' },
    });

    expect(results.map((result) => result.index)).toEqual([0, 1, 2]);
    expect(results.map((result) => result.count)).toEqual([3, 3, 3]);
    expect(results.map((result) => result.args)).toEqual([['arg-0'], ['arg-1'], ['arg-2']]);
    expect(results.map((result) => result.greeting)).toEqual(['hello', 'hello', 'hello']);
    expect(new Set(results.map((result) => result.pid)).size).toBe(3);
  });

  it('passes the shared Redis URL to workers', async () => {
    const [result] = await runWorkers<EchoResult>({ script: ECHO_WORKER, count: 1 });

    expect(result?.redisUrl).toBe(inject('redisUrl'));
  });

  describe('when a worker exits with an error', () => {
    it('rejects with its exit code and stderr', async () => {
      const run = runWorkers({ script: ECHO_WORKER, count: 2, args: ['fail'] });

      await expect(run).rejects.toThrow(/worker \d \(pid \d+\) exited with code 3/);
      await expect(run).rejects.toThrow(/failed on purpose/);
    });
  });

  describe('when a worker prints no result', () => {
    it('rejects naming the missing RESULT line', async () => {
      const run = runWorkers({ script: ECHO_WORKER, count: 1, args: ['no-result'] });

      await expect(run).rejects.toThrow('worker 0');
      await expect(run).rejects.toThrow('printed 0 "RESULT" lines, expected 1');
    });
  });

  describe('when a worker prints two results', () => {
    it('rejects naming the extra RESULT line', async () => {
      const run = runWorkers({ script: ECHO_WORKER, count: 1, args: ['two-results'] });

      await expect(run).rejects.toThrow('printed 2 "RESULT" lines, expected 1');
    });
  });

  describe('when the deadline passes', () => {
    it('kills every worker and rejects with their stderr', async () => {
      const started: number[] = [];
      const run = runWorkers({
        script: ECHO_WORKER,
        count: 2,
        args: ['hang'],
        env: { GREETING: 'unused' },
        deadlineMs: 3_000,
      });

      const error = await run.catch((err: Error) => err);

      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toContain(
        '2 of 2 worker processes did not finish within 3000 ms (options.deadlineMs)',
      );
      expect((error as Error).message).toContain('worker 0 is hanging');
      expect((error as Error).message).toContain('worker 1 is hanging');
      for (const match of (error as Error).message.matchAll(/pid (\d+)/g)) {
        started.push(Number(match[1]));
      }
      expect(started).toHaveLength(2);
      expect(started.filter(isRunning)).toEqual([]);
    });
  });

  describe('when options are invalid', () => {
    it('rejects a count of 0', async () => {
      await expect(runWorkers({ script: ECHO_WORKER, count: 0 })).rejects.toThrow(
        '"options.count" must be a positive integer, got 0',
      );
    });
  });
});

describe('startWorker', () => {
  it('waits for a stdout line and is stopped by killAll', async () => {
    const worker = startWorker({ script: ECHO_WORKER, args: ['hang'] });

    await expect(worker.waitForOutput('ready')).resolves.toBe('ready');
    expect(isRunning(worker.pid)).toBe(true);

    await killAll();

    await expect(worker.exited).resolves.toEqual({ code: null, signal: 'SIGKILL' });
    await expect(worker.result).rejects.toThrow('was killed by SIGKILL');
    expect(isRunning(worker.pid)).toBe(false);
  });
});

describe('waitFor', () => {
  it('resolves with the first truthy value', async () => {
    let calls = 0;

    const value = await waitFor(() => (++calls === 3 ? 'done' : undefined), { intervalMs: 10 });

    expect(value).toBe('done');
    expect(calls).toBe(3);
  });

  it('rejects after the timeout with the last error', async () => {
    const wait = waitFor(
      () => {
        throw new Error('not yet');
      },
      { timeoutMs: 100, intervalMs: 10, description: 'the impossible' },
    );

    await expect(wait).rejects.toThrow(
      'waitFor timed out after 100 ms waiting for the impossible; last error: not yet',
    );
  });
});

describe('spawnRedisServer', () => {
  let server: SpawnedRedisServer | undefined;
  let client: Redis | undefined;

  afterEach(async () => {
    client?.disconnect();
    client = undefined;
    await server?.stop();
    server = undefined;
  });

  it('keeps its port across kill and restart', async () => {
    server = await spawnRedisServer();
    const { port, url } = server;
    const firstPid = server.pid;
    const key = `${uniquePrefix('harness')}:value`;
    client = new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: true });
    await client.connect();
    await client.set(key, 'before kill');
    client.disconnect();

    await server.kill('SIGKILL');

    expect(server.pid).toBeUndefined();
    await expect(pingPort(port)).resolves.toBeUndefined();

    await server.restart();

    expect(server.port).toBe(port);
    expect(server.url).toBe(url);
    expect(server.pid).not.toBe(firstPid);
    await expect(pingPort(port)).resolves.toBe('+PONG');
    client = new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: true });
    await client.connect();
    // Persistence is off, so the restarted server starts empty.
    await expect(client.get(key)).resolves.toBeNull();
  });

  it('starts with a password', async () => {
    server = await spawnRedisServer({ extraArgs: ['--requirepass', 'harness-password'] });

    await expect(pingPort(server.port)).resolves.toMatch(/^-NOAUTH/);
  });

  describe('when a Redis server has the port', () => {
    it('rejects naming the port', async () => {
      server = await spawnRedisServer();

      const second = spawnRedisServer({ port: server.port });

      await expect(second).rejects.toThrow(`port ${server.port} on 127.0.0.1 is in use`);
    });
  });

  describe('when another listener has the port', () => {
    it('rejects with the bind error', async () => {
      const listener = createServer();
      listener.listen(0, '127.0.0.1');
      await once(listener, 'listening');
      const { port } = listener.address() as AddressInfo;

      try {
        const second = spawnRedisServer({ port });

        await expect(second).rejects.toThrow(`redis-server on port ${port} exited during startup`);
        await expect(second).rejects.toThrow('Address already in use');
      } finally {
        listener.close();
      }
    });
  });

  it('rejects with an install hint when the binary is missing', async () => {
    await expect(spawnRedisServer({ binary: 'redis-server-that-does-not-exist' })).rejects.toThrow(
      'apt-get install redis-server',
    );
  });
});

describe('startRedis', () => {
  describe('when REDIS_URL is set', () => {
    it('returns that URL and leaves its server running', async () => {
      const server = await spawnRedisServer();
      vi.stubEnv('REDIS_URL', server.url);

      try {
        const redis = await startRedis();
        await redis.stop();

        expect(redis.source).toBe('env');
        expect(redis.url).toBe(server.url);
        await expect(pingPort(server.port)).resolves.toBe('+PONG');
      } finally {
        await server.stop();
      }
    });

    it('rejects when no server listens there', async () => {
      const closed = await spawnRedisServer();
      const url = closed.url;
      await closed.stop();
      vi.stubEnv('REDIS_URL', url);

      await expect(startRedis()).rejects.toThrow(`REDIS_URL ${url} did not reply to PING`);
    });
  });
});

describe('uniquePrefix', () => {
  it('returns a different prefix on every call', () => {
    expect(uniquePrefix('same')).not.toBe(uniquePrefix('same'));
  });

  it('replaces characters that could form a hash tag', () => {
    const prefix = uniquePrefix('lock {id} test');

    expect(prefix).toMatch(/^tftest:lock-id-test:[a-z0-9-]+$/);
  });
});
