import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli.js';
import { cleanEnv, runTokenfleet } from './helpers.js';

interface InProcessRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command in this process; only for cases that fail before any connection. */
async function runInProcess(
  args: string[],
  env: Record<string, string> = {},
  input = '',
): Promise<InProcessRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { stdout: '', stderr: '' };
  stdout.on('data', (chunk: Buffer) => {
    chunks.stdout += chunk.toString();
  });
  stderr.on('data', (chunk: Buffer) => {
    chunks.stderr += chunk.toString();
  });
  const stdin = Readable.from(input === '' ? [] : [Buffer.from(input)]);
  const code = await runCli(args, { stdout, stderr, stdin, env });
  return { code, ...chunks };
}

const REDIS = { TOKENFLEET_REDIS_URL: 'redis://127.0.0.1:1' };
const CLIENT = { ...REDIS, QUIQUP_CLIENT_ID: 'demo-client', QUIQUP_CLIENT_SECRET: 'demo-secret' };

/** Usage errors: arguments, environment and the one line expected on stderr. */
const USAGE_ERRORS: { args: string[]; env?: Record<string, string>; stderr: string }[] = [
  {
    args: [],
    stderr: "tokenfleet: missing command (run 'tokenfleet --help')",
  },
  {
    args: ['frobnicate'],
    stderr: "tokenfleet: unknown command 'frobnicate' (run 'tokenfleet --help')",
  },
  {
    args: ['help', 'frobnicate'],
    stderr: "tokenfleet help: unknown command 'frobnicate' (run 'tokenfleet --help')",
  },
  {
    args: ['get', '--frob'],
    stderr: "tokenfleet get: unknown option --frob (run 'tokenfleet get --help')",
  },
  {
    args: ['get', '-x'],
    stderr: "tokenfleet get: unknown option -x (run 'tokenfleet get --help')",
  },
  {
    args: ['get', 'extra'],
    stderr: "tokenfleet get: unexpected argument 'extra' (run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--json=yes'],
    stderr: "tokenfleet get: option --json takes no value (run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--redis-url'],
    stderr:
      "tokenfleet get: option --redis-url requires a value (URL) (run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--redis-url', '--json'],
    stderr:
      "tokenfleet get: option --redis-url requires a value (URL) (run 'tokenfleet get --help')",
  },
  {
    args: ['get'],
    stderr:
      'tokenfleet get: missing Redis URL: pass --redis-url or set TOKENFLEET_REDIS_URL ' +
      "(run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--redis-url', 'http://127.0.0.1:6379'],
    stderr:
      "tokenfleet get: option --redis-url must be a redis:// or rediss:// URL, received scheme 'http:' " +
      "(run 'tokenfleet get --help')",
  },
  {
    args: ['get'],
    env: REDIS,
    stderr:
      'tokenfleet get: missing client id: pass --client-id or set QUIQUP_CLIENT_ID ' +
      "(run 'tokenfleet get --help')",
  },
  {
    args: ['refresh', '--client-id', 'demo-client'],
    env: REDIS,
    stderr:
      "tokenfleet refresh: missing client secret: set QUIQUP_CLIENT_SECRET (run 'tokenfleet refresh --help')",
  },
  {
    args: ['get', '--environment', 'dev'],
    env: CLIENT,
    stderr:
      "tokenfleet get: option --environment must be production or staging, received 'dev' " +
      "(run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--base-url', 'ftp://example'],
    env: CLIENT,
    stderr:
      "tokenfleet get: option --base-url must be an http:// or https:// URL, received 'ftp://example' " +
      "(run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--key-prefix', 'a{b}'],
    env: CLIENT,
    stderr:
      "tokenfleet get: option --key-prefix must contain no braces or spaces, received 'a{b}' " +
      "(run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--queue', 'a:b'],
    env: CLIENT,
    stderr:
      "tokenfleet get: option --queue must contain no colon, received 'a:b' (run 'tokenfleet get --help')",
  },
  {
    args: ['get', '--log-level', 'loud'],
    env: CLIENT,
    stderr:
      'tokenfleet get: option --log-level must be one of fatal, error, warn, info, debug, trace, ' +
      "silent, received 'loud' (run 'tokenfleet get --help')",
  },
  {
    args: ['invalidate'],
    env: CLIENT,
    stderr:
      'tokenfleet invalidate: missing token: stdin was empty; pass --token or pipe the token on ' +
      "stdin (run 'tokenfleet invalidate --help')",
  },
  {
    args: ['status', '--token', 'x'],
    env: REDIS,
    stderr: "tokenfleet status: unknown option --token (run 'tokenfleet status --help')",
  },
  {
    args: ['demo', '--workers', '0'],
    stderr:
      "tokenfleet demo: option --workers must be an integer from 1 to 64, received '0' " +
      "(run 'tokenfleet demo --help')",
  },
  {
    args: ['demo', '--calls', '1.5'],
    stderr:
      "tokenfleet demo: option --calls must be an integer from 1 to 5000, received '1.5' " +
      "(run 'tokenfleet demo --help')",
  },
  {
    args: ['worker'],
    env: CLIENT,
    stderr:
      'tokenfleet worker: missing resource URL: pass --resource-url or set ' +
      "TOKENFLEET_RESOURCE_URL (or QUIQUP_BASE_URL) (run 'tokenfleet worker --help')",
  },
];

describe('runCli', () => {
  describe('when the command line is wrong', () => {
    it.each(USAGE_ERRORS)('rejects $args with exit code 2', async ({ args, env, stderr }) => {
      const run = await runInProcess(args, env);

      expect(run.stderr).toBe(`${stderr}\n`);
      expect(run.stdout).toBe('');
      expect(run.code).toBe(2);
    });
  });

  describe('when help is asked for', () => {
    it('lists every command', async () => {
      const run = await runInProcess(['--help']);

      expect(run.code).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout.startsWith('Usage: tokenfleet <command> [options]\n')).toBe(true);
      for (const name of ['get', 'status', 'invalidate', 'refresh', 'demo', 'worker']) {
        expect(run.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
      }
    });

    it.each(['get', 'status', 'invalidate', 'refresh', 'demo', 'worker'])(
      'prints the options of %s',
      async (name) => {
        const run = await runInProcess([name, '--help']);
        const viaHelp = await runInProcess(['help', name]);

        expect(run.code).toBe(0);
        expect(run.stdout.startsWith(`Usage: tokenfleet ${name} `)).toBe(true);
        expect(run.stdout).toContain('  -h, --help ');
        expect(viaHelp.stdout).toBe(run.stdout);
      },
    );

    it('prints help even when settings are missing', async () => {
      const run = await runInProcess(['refresh', '-h']);

      expect(run.code).toBe(0);
      expect(run.stderr).toBe('');
    });
  });

  describe('when the secret is set', () => {
    it('never prints it in an error', async () => {
      const run = await runInProcess(['get', '--environment', 'dev'], {
        ...CLIENT,
        QUIQUP_CLIENT_SECRET: 'very-secret-value',
      });

      expect(run.code).toBe(2);
      expect(run.stderr).not.toContain('very-secret-value');
    });
  });
});

describe('tokenfleet process', () => {
  it('exits 2 with one line for a usage error', async () => {
    const run = await runTokenfleet(['get', '--frob']);

    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      "tokenfleet get: unknown option --frob (run 'tokenfleet get --help')\n",
    );
    expect(run.code).toBe(2);
  });

  it('exits 2 naming the missing variable', async () => {
    const run = await runTokenfleet(['status'], { env: cleanEnv() });

    expect(run.stderr).toBe(
      "tokenfleet status: missing Redis URL: pass --redis-url or set TOKENFLEET_REDIS_URL (run 'tokenfleet status --help')\n",
    );
    expect(run.code).toBe(2);
  });

  it('exits 0 after printing help', async () => {
    const run = await runTokenfleet(['--help']);

    expect(run.stderr).toBe('');
    expect(run.stdout.startsWith('Usage: tokenfleet <command> [options]\n')).toBe(true);
    expect(run.code).toBe(0);
  });
});
