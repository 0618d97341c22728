import { describe, expect, it } from 'vitest';
import { RedisNotFoundError, UsageError } from '../src/errors.js';
import { launchRedis, repliesToPing } from '../src/redis-launcher.js';

const INSTALL_HINT =
  'set REDIS_URL or pass --redis-url, or install redis-server (apt-get install redis-server)';

describe('launchRedis', () => {
  describe('when a URL is given', () => {
    it('returns it and starts nothing', async () => {
      const redis = await launchRedis({ url: 'redis://user:pw@127.0.0.1:6390' });

      expect(redis.url).toBe('redis://user:pw@127.0.0.1:6390');
      expect(redis.source).toBe('url');
      expect(redis.description).toBe('redis://user:***@127.0.0.1:6390 (given)');
      await redis.close();
    });

    it('rejects a URL of another scheme', async () => {
      await expect(launchRedis({ url: 'http://127.0.0.1:6379' })).rejects.toThrowError(
        new UsageError(
          "option --redis-url must be a redis:// or rediss:// URL, received scheme 'http:'",
        ),
      );
    });
  });

  describe('when redis-server is on PATH', () => {
    it('starts it on a free loopback port and stops it on close', async () => {
      const redis = await launchRedis({ testcontainers: false });
      const port = Number(new URL(redis.url).port);

      expect(redis.source).toBe('redis-server');
      expect(redis.url).toBe(`redis://127.0.0.1:${port}`);
      expect(await repliesToPing(port)).toBe(true);

      await redis.close();
      expect(await repliesToPing(port)).toBe(false);
    });
  });

  describe('when no server can be started', () => {
    it('names the missing program and how to get Redis', async () => {
      const launching = launchRedis({
        redisServerCommand: 'tokenfleet-no-such-redis-server',
        testcontainers: false,
      });

      await expect(launching).rejects.toThrowError(RedisNotFoundError);
      await expect(launching).rejects.toThrowError(
        `no Redis server found (tokenfleet-no-such-redis-server: not found on PATH): ${INSTALL_HINT}`,
      );
    });

    it('reports a program that exits before it answers', async () => {
      const launching = launchRedis({ redisServerCommand: 'false', testcontainers: false });

      await expect(launching).rejects.toThrowError(
        `no Redis server found (false: exited with code 1 before replying to PING): ${INSTALL_HINT}`,
      );
    });
  });
});
