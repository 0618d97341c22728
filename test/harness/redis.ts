import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { spawnRedisServer } from './redis-server.js';

export {
  pingPort,
  REDIS_SERVER_INSTALL_HINT,
  type SpawnedRedisServer,
  type SpawnRedisOptions,
  spawnRedisServer,
} from './redis-server.js';

/** Image of the container that `startRedis()` runs when a Docker engine responds. */
const REDIS_IMAGE = 'redis:7-alpine';

/**
 * How long the container runtime check may take. testcontainers fails within milliseconds when no
 * Docker socket exists, but a socket whose engine hangs could stall the whole run.
 */
const DOCKER_CHECK_TIMEOUT_MS = 3_000;

/** How long the server named by REDIS_URL may take to reply to PING. */
const ENV_PING_TIMEOUT_MS = 5_000;

/** Where the Redis server of `startRedis()` comes from. */
export type RedisSource = 'env' | 'testcontainers' | 'spawned';

export interface StartedRedis {
  url: string;
  source: RedisSource;
  /** Stops the container or process that `startRedis()` started; does nothing for REDIS_URL. */
  stop(): Promise<void>;
}

/**
 * Provides a Redis server for a test run. In order of preference:
 * 1. `REDIS_URL` when it is set (it must reply to PING);
 * 2. a `redis:7-alpine` container through testcontainers when a Docker engine responds;
 * 3. a `redis-server` child process on a free port of 127.0.0.1.
 */
export async function startRedis(): Promise<StartedRedis> {
  const envUrl = process.env.REDIS_URL;
  if (envUrl) {
    await checkEnvServer(envUrl);
    return { url: envUrl, source: 'env', stop: async () => {} };
  }

  const container = await startContainerIfDockerAnswers();
  if (container) {
    return container;
  }

  const server = await spawnRedisServer();
  return { url: server.url, source: 'spawned', stop: () => server.stop() };
}

/**
 * Returns a key prefix that no other test, process or run shares, such as
 * `tftest:fencing:k2x9a1-3f09c2`. Characters other than letters, digits, `.`, `_` and `-` in
 * `name` become `-`, so the prefix never contains a `{` that would change Redis Cluster hash tags.
 */
export function uniquePrefix(name: string): string {
  const slug = name.replace(/[^A-Za-z0-9._-]+/g, '-');
  const unique = `${Date.now().toString(36)}-${process.pid.toString(36)}-${randomBytes(3).toString('hex')}`;
  return `tftest:${slug}:${unique}`;
}

async function checkEnvServer(url: string): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: ENV_PING_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // Connection errors reach the caller through connect() and ping() below.
  client.on('error', () => {});

  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    throw new Error(
      `REDIS_URL ${redactPassword(url)} did not reply to PING (${(err as Error).message.replace(/\.$/, '')}); ` +
        'start that server or unset REDIS_URL so that the harness starts one',
      { cause: err },
    );
  } finally {
    client.disconnect();
  }
}

async function startContainerIfDockerAnswers(): Promise<StartedRedis | undefined> {
  const testcontainers = await import('testcontainers');

  // testcontainers logs its runtime probing through `debug`, so a failed check prints nothing
  // unless DEBUG=testcontainers* is set.
  const runtimeCheck = testcontainers.getContainerRuntimeClient().then(
    () => true,
    () => false,
  );
  // NOTE: a probe that hangs past the timeout is abandoned, not cancelled; its open socket may
  // delay the exit of the test run.
  const dockerAnswers = await Promise.race([
    runtimeCheck,
    sleep(DOCKER_CHECK_TIMEOUT_MS, false, { ref: false }),
  ]);
  if (!dockerAnswers) {
    return undefined;
  }

  try {
    const container = await new testcontainers.GenericContainer(REDIS_IMAGE)
      .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
      .withExposedPorts(6379)
      .withWaitStrategy(testcontainers.Wait.forLogMessage('Ready to accept connections'))
      .start();
    return {
      url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`,
      source: 'testcontainers',
      stop: async () => {
        await container.stop();
      },
    };
  } catch (err) {
    // An engine that responds but cannot pull or run the image (offline, no permission) should not
    // block a machine that has redis-server installed.
    console.warn(
      `tokenfleet tests: starting a ${REDIS_IMAGE} container failed (${(err as Error).message}); ` +
        'spawning redis-server instead',
    );
    return undefined;
  }
}

function redactPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) {
      parsed.password = '***';
    }
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
