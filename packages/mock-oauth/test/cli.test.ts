import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CliUsageError, parseCliConfig } from '../src/cli-config.js';

const BIN_PATH = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

describe('parseCliConfig', () => {
  it('returns no server options without flags or environment', () => {
    expect(parseCliConfig([], {})).toEqual({ help: false, logLevel: 'info', serverOptions: {} });
  });

  it('reads every flag', () => {
    const config = parseCliConfig(
      [
        '--port',
        '8080',
        '--host',
        '::1',
        '--expires-in',
        '0.5',
        '--client',
        'a:secret:with:colons',
        '--client',
        'b:s2',
        '--log-level',
        'debug',
      ],
      {},
    );

    expect(config).toEqual({
      help: false,
      logLevel: 'debug',
      serverOptions: {
        port: 8080,
        host: '::1',
        expiresIn: 0.5,
        clients: [
          { clientId: 'a', clientSecret: 'secret:with:colons' },
          { clientId: 'b', clientSecret: 's2' },
        ],
      },
    });
  });

  it('reads MOCK_OAUTH_* environment variables', () => {
    const config = parseCliConfig([], {
      MOCK_OAUTH_PORT: '9000',
      MOCK_OAUTH_HOST: 'localhost',
      MOCK_OAUTH_PRESET: 'staging',
      MOCK_OAUTH_CLIENTS: 'a:1, b:2',
      MOCK_OAUTH_LOG_LEVEL: 'warn',
    });

    expect(config).toEqual({
      help: false,
      logLevel: 'warn',
      serverOptions: {
        port: 9000,
        host: 'localhost',
        preset: 'staging',
        clients: [
          { clientId: 'a', clientSecret: '1' },
          { clientId: 'b', clientSecret: '2' },
        ],
      },
    });
  });

  it('lets a lifetime flag replace the lifetime from the environment', () => {
    const config = parseCliConfig(['--preset', 'production'], { MOCK_OAUTH_EXPIRES_IN: '5' });

    expect(config.serverOptions).toEqual({ preset: 'production' });
  });

  it('lets a flag override its environment variable', () => {
    const config = parseCliConfig(['--port', '1234'], { MOCK_OAUTH_PORT: '9000' });

    expect(config.serverOptions.port).toBe(1234);
  });

  it.each([
    [['--port', 'abc'], '--port must be an integer from 0 to 65535, received "abc"'],
    [['--port', ''], '--port must be an integer from 0 to 65535, received ""'],
    [['--preset', 'dev'], '--preset must be "production" or "staging", received "dev"'],
    [['--expires-in=-1'], '--expires-in must be a number of seconds, 0 or more, received "-1"'],
    [['--preset', 'staging', '--expires-in', '5'], '--preset and --expires-in cannot be combined'],
    [
      ['--client', 'no-colon-secret'],
      'client 1 (--client or MOCK_OAUTH_CLIENTS) must be "id:secret"',
    ],
    [['--log-level', 'loud'], '--log-level must be one of'],
    [['--unknown'], "Unknown option '--unknown'"],
  ])('rejects %o', (argv, message) => {
    expect(() => parseCliConfig(argv, {})).toThrow(CliUsageError);
    expect(() => parseCliConfig(argv, {})).toThrow(message);
  });

  it('never shows a client entry without a colon, which may be a secret', () => {
    expect(() => parseCliConfig(['--client', 'hunter2'], {})).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('hunter2') }),
    );
  });
});

describe('tokenfleet-mock-oauth', () => {
  let child: ChildProcess | undefined;

  afterEach(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    child = undefined;
  });

  function startBin(args: string[], env: Record<string, string> = {}): ChildProcess {
    return spawn(process.execPath, ['--import', 'tsx', BIN_PATH, ...args], {
      cwd: PACKAGE_DIR,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  async function readFirstLine(stream: NodeJS.ReadableStream): Promise<string> {
    let buffered = '';
    for await (const chunk of stream) {
      buffered += String(chunk);
      const newline = buffered.indexOf('\n');
      if (newline !== -1) {
        return buffered.slice(0, newline);
      }
    }
    throw new Error(`stream ended before a full line: ${buffered}`);
  }

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'prints the URL, serves tokens and exits 0 on %s',
    async (signal) => {
      child = startBin(['--expires-in', '30'], { MOCK_OAUTH_CLIENTS: 'bin-client:bin-secret' });
      const stderr: string[] = [];
      child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));

      const url = await readFirstLine(child.stdout!);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

      const response = await fetch(`${url}/oauth/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          client_id: 'bin-client',
          client_secret: 'bin-secret',
          grant_type: 'client_credentials',
        }),
      });
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status).toBe(200);
      expect(body.expires_in).toBe(30);

      const exited = once(child, 'close');
      child.kill(signal);
      const [code] = await exited;

      expect(code).toBe(0);
      const logs = stderr
        .join('')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { msg: string });
      expect(logs.map((entry) => entry.msg)).toContain('mock oauth server started');
      expect(logs.map((entry) => entry.msg)).toContain('mock oauth server closed');
      expect(stderr.join('')).not.toContain('bin-secret');
    },
    20_000,
  );

  it('exits 2 with usage on an invalid flag', async () => {
    child = startBin(['--preset', 'dev']);
    const stderr: string[] = [];
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));

    const [code] = await once(child, 'close');

    expect(code).toBe(2);
    expect(stderr.join('')).toContain('--preset must be "production" or "staging"');
    expect(stderr.join('')).toContain('Usage: tokenfleet-mock-oauth');
  }, 20_000);
});
