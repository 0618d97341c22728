import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkRedisUrl, redactUrl } from './config.js';
import { RedisNotFoundError } from './errors.js';

/** How long a spawned redis-server may take to reply to PING, in milliseconds. */
const DEFAULT_START_TIMEOUT_MS = 10_000;

/** Pause between PING attempts while redis-server starts, in milliseconds. */
const PING_INTERVAL_MS = 50;

/** How long redis-server may take to exit after SIGTERM before it gets SIGKILL, in milliseconds. */
const STOP_TIMEOUT_MS = 5_000;

/** Ports to try when another process takes the free port between the probe and redis-server. */
const PORT_ATTEMPTS = 3;

/**
 * How long the Docker engine check may take, in milliseconds. It fails at once when no socket
 * exists, but a socket whose engine hangs would stall the demo.
 */
const DOCKER_CHECK_TIMEOUT_MS = 3_000;

/** Image that the testcontainers fallback starts. */
const REDIS_IMAGE = 'redis:7-alpine';

/** Origin of the Redis server of a run. */
export type RedisSource = 'url' | 'redis-server' | 'testcontainers';

/** A Redis server that the demo can use; `close()` stops it when the launcher started it. */
export interface LaunchedRedis {
  url: string;
  source: RedisSource;
  /** One line for progress output, such as `redis-server on 127.0.0.1:41234 (started)`. */
  description: string;
  close(): Promise<void>;
}

export interface LaunchRedisOptions {
  /** Use this server and start nothing. */
  url?: string;
  /** Program to start when no URL is given. Default `redis-server` from PATH. */
  redisServerCommand?: string;
  /** Whether to try testcontainers when redis-server cannot start. Default true. */
  testcontainers?: boolean;
  /** How long a started server may take to reply to PING, in milliseconds. Default 10000. */
  startTimeoutMs?: number;
}

/**
 * Finds a Redis server for the demo: the given URL; else a `redis-server` started on a free
 * loopback port with persistence off; else a container through testcontainers when that package
 * is installed and a Docker engine responds. Raises `RedisNotFoundError` saying how to get one
 * when none of these works.
 */
export async function launchRedis(options: LaunchRedisOptions = {}): Promise<LaunchedRedis> {
  if (options.url !== undefined) {
    const url = checkRedisUrl(options.url, '--redis-url');
    return {
      url,
      source: 'url',
      description: `${redactUrl(url)} (given)`,
      close: async () => {},
    };
  }

  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const failures: string[] = [];

  const command = options.redisServerCommand ?? 'redis-server';
  try {
    return await startRedisServer(command, startTimeoutMs);
  } catch (err) {
    failures.push(`${command}: ${errorMessage(err)}`);
  }

  if (options.testcontainers !== false) {
    try {
      const launched = await startRedisContainer();
      if (launched) {
        return launched;
      }
      failures.push('testcontainers: not installed or no Docker engine responded');
    } catch (err) {
      failures.push(`testcontainers: ${errorMessage(err)}`);
    }
  }

  throw new RedisNotFoundError(
    `no Redis server found (${failures.join('; ')}): set REDIS_URL or pass --redis-url, ` +
      'or install redis-server (apt-get install redis-server)',
  );
}

/** Starts redis-server on a free port, retrying when another process takes the port first. */
async function startRedisServer(command: string, startTimeoutMs: number): Promise<LaunchedRedis> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt += 1) {
    const port = await findFreePort();
    try {
      return await startRedisServerOnPort(command, port, startTimeoutMs);
    } catch (err) {
      lastError = err;
      // A missing program fails the same way on every port.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        break;
      }
    }
  }
  throw lastError;
}

async function startRedisServerOnPort(
  command: string,
  port: number,
  startTimeoutMs: number,
): Promise<LaunchedRedis> {
  // redis-server writes nothing with these flags, but its working folder is still a temporary one.
  const dir = await mkdtemp(join(tmpdir(), 'tokenfleet-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--dir', dir, '--daemonize', 'no', '--loglevel', 'warning');
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });

  // Keep the tail of the output to explain an early exit, such as a port already in use.
  let output = '';
  const keepOutput = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-2_000);
  };
  child.stdout?.on('data', keepOutput);
  child.stderr?.on('data', keepOutput);

  try {
    await waitForRedis(child, port, startTimeoutMs, () => output);
  } catch (err) {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    source: 'redis-server',
    description: `redis-server on 127.0.0.1:${port} (started for this run)`,
    close: async () => {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once the server replies to PING; rejects when the process fails or exits first. */
async function waitForRedis(
  child: ChildProcess,
  port: number,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  let failure: Error | undefined;
  child.once('error', (err) => {
    failure = err;
  });
  child.once('exit', (code, signal) => {
    const tail = lastLine(output());
    failure ??= new Error(
      `exited with ${signal ?? `code ${code}`} before replying to PING${tail ? `: ${tail}` : ''}`,
    );
  });

  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (failure) {
      throw failure;
    }
    if (await repliesToPing(port)) {
      return;
    }
    await sleep(PING_INTERVAL_MS);
  }
  throw failure ?? new Error(`no reply to PING on port ${port} within ${timeoutMs} ms`);
}

/** Sends one inline PING and returns whether `+PONG` came back. */
export function repliesToPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        finish(reply.startsWith('+PONG'));
      }
    });
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
  });
}

/** Sends SIGTERM, then SIGKILL when the process has not exited after {@link STOP_TIMEOUT_MS}. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');

  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Asks the operating system for a free loopback port. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The parts of the testcontainers API that the fallback uses. */
interface TestcontainersModule {
  getContainerRuntimeClient(): Promise<unknown>;
  GenericContainer: new (image: string) => ContainerBuilder;
}

interface ContainerBuilder {
  withExposedPorts(...ports: number[]): ContainerBuilder;
  withCommand(command: string[]): ContainerBuilder;
  start(): Promise<StartedContainer>;
}

interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

/**
 * Starts a Redis container. Returns undefined when testcontainers is not installed or no Docker
 * engine responds. testcontainers is an optional dependency, so it is imported by a computed name.
 */
async function startRedisContainer(): Promise<LaunchedRedis | undefined> {
  const moduleName = 'testcontainers';
  let testcontainers: TestcontainersModule;
  try {
    testcontainers = (await import(moduleName)) as TestcontainersModule;
  } catch {
    return undefined;
  }
  try {
    await withTimeout(testcontainers.getContainerRuntimeClient(), DOCKER_CHECK_TIMEOUT_MS);
  } catch {
    return undefined;
  }

  // NOTE: no Docker engine runs where this project is developed, so this path has not been run.
  const container = await new testcontainers.GenericContainer(REDIS_IMAGE)
    .withExposedPorts(6379)
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(6379);
  return {
    url: `redis://${host}:${port}`,
    source: 'testcontainers',
    description: `${REDIS_IMAGE} container on ${host}:${port} (started for this run)`,
    close: async () => {
      await container.stop();
    },
  };
}

/** Rejects when `promise` has not settled after `timeoutMs`. */
async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').trim();
}

function errorMessage(err: unknown): string {
  if ((err as NodeJS.ErrnoException)?.code === 'ENOENT') {
    return 'not found on PATH';
  }
  return err instanceof Error ? err.message : String(err);
}
