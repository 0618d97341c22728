import type { TestProject } from 'vitest/node';
import { type RedisSource, startRedis } from '../harness/redis.js';

/**
 * Environment variable with the URL of the run's shared Redis server, for worker processes that
 * tests spawn. Those cannot call `inject()`, and vitest forks inherit this process's environment.
 */
export const TEST_REDIS_URL_ENV = 'TOKENFLEET_TEST_REDIS_URL';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the Redis server that every test file shares; each test uses its own key prefix. */
    redisUrl: string;
    /** Where that server comes from: REDIS_URL, a testcontainers container or a spawned process. */
    redisSource: RedisSource;
  }
}

/** Starts one Redis server for the whole run and stops it when the run ends. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();

  project.provide('redisUrl', redis.url);
  project.provide('redisSource', redis.source);
  process.env[TEST_REDIS_URL_ENV] = redis.url;

  return () => redis.stop();
}
