import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { killOnExit } from './child-cleanup.js';

/** Default for `startTimeoutMs`: a redis-server with no data to load replies to PING well within it. */
const DEFAULT_START_TIMEOUT_MS = 10_000;

/** Pause between two PING attempts while redis-server starts. */
const PING_INTERVAL_MS = 50;

/** How long one PING attempt may take before it counts as no reply. */
const PING_TIMEOUT_MS = 1_000;

/** How long `stop()` waits after SIGTERM before it sends SIGKILL. */
const STOP_GRACE_MS = 5_000;

/** Characters of redis-server output kept to explain a failed start. */
const OUTPUT_TAIL_CHARS = 4_000;

/**
 * Start attempts when the caller gave no port. Another process can take the free port between
 * the probe and redis-server's bind, so a failed bind picks a new port.
 */
const FREE_PORT_ATTEMPTS = 3;

const HOST = '127.0.0.1';

/** How to get a Redis server for the tests, shown when `redis-server` cannot be started. */
export const REDIS_SERVER_INSTALL_HINT =
  'install it with "apt-get install redis-server" (Debian, Ubuntu) or "brew install redis" (macOS), ' +
  'or set REDIS_URL to a running Redis server';

export interface SpawnRedisOptions {
  /** TCP port on 127.0.0.1. Default: a free port that the operating system picks. */
  port?: number;
  /** Extra `redis-server` arguments, appended after the defaults, such as `['--requirepass', 'pw']`. */
  extraArgs?: string[];
  /** Executable to run. Default: `redis-server`, looked up on PATH. */
  binary?: string;
  /** Milliseconds to wait for the first PING reply after each start. Default 10 000. */
  startTimeoutMs?: number;
}

/** A redis-server child process that a test owns and may kill and restart. */
export interface SpawnedRedisServer {
  /** URL `redis://127.0.0.1:<port>`, the same across `restart()`. */
  readonly url: string;
  readonly port: number;
  /** Process id of the running redis-server, or `undefined` while none runs. */
  readonly pid: number | undefined;
  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server if it still runs, starts it again on the same port and waits for PING. */
  restart(): Promise<void>;
  /** Sends SIGTERM, then SIGKILL after 5 s, and waits for the exit. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` on 127.0.0.1 with persistence off and resolves once it replies to PING.
 * Rejects with an install hint when the executable is missing.
 */
export async function spawnRedisServer(
  options: SpawnRedisOptions = {},
): Promise<SpawnedRedisServer> {
  const settings = {
    binary: options.binary ?? 'redis-server',
    extraArgs: options.extraArgs ?? [],
    startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
  };

  if (options.port !== undefined) {
    const child = await startServerProcess(settings, options.port);
    return new RedisServerHandle(settings, options.port, child);
  }

  for (let attempt = 1; ; attempt++) {
    const port = await findFreePort();
    try {
      const child = await startServerProcess(settings, port);
      return new RedisServerHandle(settings, port, child);
    } catch (err) {
      if (!(err instanceof PortInUseError) || attempt >= FREE_PORT_ATTEMPTS) {
        throw err;
      }
    }
  }
}

/**
 * Sends PING to `127.0.0.1:port` over a raw connection and returns the first reply line, or
 * `undefined` when no reply came within `timeoutMs`.
 */
export function pingPort(port: number, timeoutMs = PING_TIMEOUT_MS): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    let received = '';

    const finish = (reply: string | undefined) => {
      socket.destroy();
      resolve(reply);
    };

    socket.setTimeout(timeoutMs, () => finish(undefined));
    socket.once('error', () => finish(undefined));
    socket.once('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n');
      if (end !== -1) {
        finish(received.slice(0, end));
      }
    });
  });
}

interface ServerSettings {
  binary: string;
  extraArgs: string[];
  startTimeoutMs: number;
}

class PortInUseError extends Error {}

class RedisServerHandle implements SpawnedRedisServer {
  readonly url: string;
  readonly port: number;
  private child: ChildProcess | undefined;
  private readonly settings: ServerSettings;

  constructor(settings: ServerSettings, port: number, child: ChildProcess) {
    this.settings = settings;
    this.port = port;
    this.url = `redis://${HOST}:${port}`;
    this.child = child;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child) {
      await signalAndWait(child, signal);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    this.child = await this.startOnSamePort();
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) {
      return;
    }

    const exited = waitForExit(child);
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  // Another process may take the port while the server is down, so a failed bind is retried
  // until the start timeout passes.
  private async startOnSamePort(): Promise<ChildProcess> {
    const deadline = Date.now() + this.settings.startTimeoutMs;
    for (;;) {
      try {
        return await startServerProcess(this.settings, this.port);
      } catch (err) {
        if (!(err instanceof PortInUseError) || Date.now() >= deadline) {
          throw err;
        }
        await sleep(PING_INTERVAL_MS);
      }
    }
  }
}

async function startServerProcess(settings: ServerSettings, port: number): Promise<ChildProcess> {
  // A server already on the port would reply to the PINGs below in place of the new process.
  const earlierReply = await pingPort(port);
  if (earlierReply !== undefined) {
    throw new PortInUseError(
      `port ${port} on ${HOST} is in use by a server that replied ${JSON.stringify(earlierReply)} to PING`,
    );
  }

  const args = [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--save',
    '',
    '--appendonly',
    'no',
    // Keeps a stray dump.rdb (from a SHUTDOWN SAVE in some test) out of the repository.
    '--dir',
    tmpdir(),
    ...settings.extraArgs,
  ];
  const child = spawn(settings.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });

  let output = '';
  const keepOutput = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', keepOutput);
  child.stderr?.on('data', keepOutput);

  await waitForSpawn(child, settings.binary);
  killOnExit(child);

  const exited = waitForExit(child).then(() => true);
  const deadline = Date.now() + settings.startTimeoutMs;
  while (Date.now() < deadline) {
    const reply = await pingPort(port);
    // A server started with --requirepass replies -NOAUTH, which also means it is up.
    if (reply === '+PONG' || reply?.startsWith('-NOAUTH')) {
      return child;
    }

    const hasExited = await Promise.race([exited, sleep(PING_INTERVAL_MS, false)]);
    if (hasExited) {
      const exit = child.signalCode ?? `code ${child.exitCode}`;
      const message = `redis-server on port ${port} exited during startup (${exit}); output tail:\n${output}`;
      throw output.includes('Address already in use')
        ? new PortInUseError(message)
        : new Error(message);
    }
  }

  await signalAndWait(child, 'SIGKILL');
  throw new Error(
    `redis-server on port ${port} did not reply to PING within ${settings.startTimeoutMs} ms ` +
      `(options.startTimeoutMs); output tail:\n${output}`,
  );
}

async function waitForSpawn(child: ChildProcess, binary: string): Promise<void> {
  try {
    await once(child, 'spawn');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`"${binary}" was not found on PATH; ${REDIS_SERVER_INSTALL_HINT}`, {
        cause: err,
      });
    }
    throw err;
  }
}

async function signalAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const exited = waitForExit(child);
  child.kill(signal);
  await exited;
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve();
  }
  return once(child, 'exit').then(() => undefined);
}

async function findFreePort(): Promise<number> {
  const server = createServer();
  server.listen(0, HOST);
  await once(server, 'listening');

  const address = server.address();
  server.close();
  await once(server, 'close');

  if (address === null || typeof address === 'string') {
    throw new Error(`could not read the port of a probe server on ${HOST}`);
  }
  return address.port;
}
