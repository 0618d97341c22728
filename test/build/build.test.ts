import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniquePrefix } from '../harness/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Folder names under packages/, in build order. */
const PACKAGES = ['mock-oauth', 'core', 'refresher', 'cli'] as const;

const CHECK_SCRIPT = fileURLToPath(new URL('./installed-check.mjs', import.meta.url));

/**
 * Longest that one command may run before it gets SIGTERM. `pnpm build` compiles four packages one
 * after the other (about 16 s alone); two test files run at a time, so allow a slow machine.
 */
const COMMAND_TIMEOUT_MS = 50_000;

/** The part of `pnpm pack --json` output that the test reads. */
interface PackResult {
  name: string;
  filename: string;
}

interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tempDir: string;
let keyPrefix: string;
/** Packages that had a dist folder before the build; theirs stays, the others are removed. */
let builtBefore: Set<string>;

beforeAll(async () => {
  builtBefore = new Set(PACKAGES.filter((name) => existsSync(join(packageDir(name), 'dist'))));
  tempDir = await mkdtemp(join(tmpdir(), 'tokenfleet-build-'));
  keyPrefix = uniquePrefix('build');

  await runChecked('pnpm', ['run', 'build'], REPO_ROOT);
  const packed = await Promise.all(
    PACKAGES.map(async (name) => {
      const args = ['pack', '--json', '--pack-destination', tempDir];
      const run = await runChecked('pnpm', args, packageDir(name));
      return JSON.parse(run.stdout) as PackResult;
    }),
  );
  await installTarballs(packed);
  await copyFile(CHECK_SCRIPT, join(tempDir, 'installed-check.mjs'));
});

afterAll(async () => {
  if (tempDir) {
    await rm(tempDir, { recursive: true, force: true });
  }
  for (const name of PACKAGES) {
    if (!builtBefore?.has(name)) {
      await rm(join(packageDir(name), 'dist'), { recursive: true, force: true });
    }
  }
  await deleteKeys(`${keyPrefix}*`);
});

describe('pnpm build', () => {
  it('copies the Lua scripts and gives each bin a plain node shebang', async () => {
    const luaFiles = [
      'delete-token-if-hash-1.lua',
      'read-token-2.lua',
      'write-token-if-current-2.lua',
    ];
    for (const file of luaFiles) {
      expect(existsSync(join(packageDir('core'), 'dist', 'lua', file))).toBe(true);
    }

    for (const name of ['mock-oauth', 'refresher', 'cli']) {
      const bin = await readFile(join(packageDir(name), 'dist', 'bin.js'), 'utf8');
      expect(bin.split('\n', 1)[0]).toBe('#!/usr/bin/env node');
    }
  });

  describe('when the packed packages are installed in a new folder', () => {
    it('publishes dist entries and dist bins', async () => {
      const manifests = await Promise.all(
        PACKAGES.map(async (name) => {
          const file = join(installedDir(name), 'package.json');
          return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
        }),
      );

      for (const manifest of manifests) {
        expect(manifest.exports).toEqual({
          '.': { types: './dist/index.d.ts', default: './dist/index.js' },
        });
      }
      expect(manifests.map((manifest) => manifest.bin)).toEqual([
        { 'tokenfleet-mock-oauth': './dist/bin.js' },
        undefined,
        { 'tokenfleet-refresher': './dist/bin.js' },
        { tokenfleet: './dist/bin.js' },
      ]);
    });

    it('shares a token from the built mock server through Redis under plain node', async () => {
      const run = await runCommand(
        process.execPath,
        ['installed-check.mjs', inject('redisUrl'), keyPrefix],
        tempDir,
      );

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({
        entries: [
          '@tokenfleet/core/dist/index.js',
          '@tokenfleet/mock-oauth/dist/index.js',
          '@tokenfleet/refresher/dist/index.js',
          '@tokenfleet/cli/dist/index.js',
        ],
        fetchedSource: 'upstream',
        sharedSource: 'redis',
        sameToken: true,
        tokenActive: true,
        tokenRequests: 1,
        deleted: true,
        createRenewalQueue: 'function',
        commands: ['get', 'status', 'invalidate', 'refresh', 'demo', 'worker'],
      });
    });

    it('runs tokenfleet --help through its shebang and exits 0', async () => {
      const run = await runCommand(
        join(installedDir('cli'), 'dist', 'bin.js'),
        ['--help'],
        tempDir,
      );

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout.split('\n', 1)[0]).toBe('Usage: tokenfleet <command> [options]');
    });

    it('runs tokenfleet demo, whose workers start from dist, with one token request', async () => {
      const args = ['demo', '--workers', '2', '--calls', '5', '--json'];
      const run = await runCommand(
        join(installedDir('cli'), 'dist', 'bin.js'),
        [...args, '--redis-url', inject('redisUrl')],
        tempDir,
      );

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({
        passed: true,
        problems: [],
        workers: 2,
        calls: 10,
        successes: 10,
        failures: 0,
        tokenRequests: 1,
        distinctTokens: 1,
      });
    });

    it('runs tokenfleet-mock-oauth --help through its shebang and exits 0', async () => {
      const run = await runCommand(
        join(installedDir('mock-oauth'), 'dist', 'bin.js'),
        ['--help'],
        tempDir,
      );

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout.split('\n', 1)[0]).toBe('Usage: tokenfleet-mock-oauth [options]');
    });

    it('runs tokenfleet-refresher through its shebang up to its configuration check', async () => {
      const run = await runCommand(join(installedDir('refresher'), 'dist', 'bin.js'), [], tempDir, {
        QUIQUP_CLIENT_ID: 'client-1',
        QUIQUP_CLIENT_SECRET: 'build-test-secret',
        QUIQUP_ENVIRONMENT: 'staging',
        TOKENFLEET_REFRESHER_PORT: 'abc',
      });

      expect(run.code).toBe(2);
      expect(run.stderr).toBe(
        'tokenfleet-refresher: invalid configuration: TOKENFLEET_REFRESHER_PORT must be an integer from 0 to 65535 (received "abc")\n',
      );
      expect(run.stdout).toBe('');
    });
  });
});

function packageDir(name: string): string {
  return join(REPO_ROOT, 'packages', name);
}

function installedDir(name: string): string {
  return join(tempDir, 'node_modules', '@tokenfleet', name);
}

/**
 * Installs the packed tarballs in tempDir from the workspace's pnpm store, without the network. The
 * overrides make the packages' dependencies on each other use the tarballs too.
 */
async function installTarballs(packed: readonly PackResult[]): Promise<void> {
  const tarballs = Object.fromEntries(
    packed.map((result) => [result.name, `file:${basename(result.filename)}`]),
  );
  const manifest = {
    name: 'tokenfleet-build-check',
    private: true,
    type: 'module',
    dependencies: tarballs,
    pnpm: { overrides: tarballs },
  };
  await writeFile(join(tempDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

  const store = await runChecked('pnpm', ['store', 'path'], REPO_ROOT);
  await runChecked('pnpm', ['install', '--offline', '--store-dir', store.stdout.trim()], tempDir);
}

/** Runs a command; resolves with its exit code and output, whatever the code. */
function runCommand(
  file: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd,
      env: { ...outsideWorkspaceEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: COMMAND_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs a command and rejects with its output when it exits with a code other than 0. */
async function runChecked(file: string, args: string[], cwd: string): Promise<CommandResult> {
  const run = await runCommand(file, args, cwd);
  if (run.code !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} exited with ${run.code} in ${cwd}\n${run.stdout}\n${run.stderr}`,
    );
  }
  return run;
}

/**
 * The environment without the variables that `pnpm test` sets for its own package, so that a pnpm
 * started in tempDir does not take the workspace's settings, and a bin does not see them.
 */
function outsideWorkspaceEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('npm_') && !name.startsWith('PNPM_SCRIPT'),
    ),
  );
}

async function deleteKeys(pattern: string): Promise<void> {
  const redis = new Redis(inject('redisUrl'));
  try {
    const keys = await redis.keys(pattern);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}
