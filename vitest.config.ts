import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/bench/**/*.bench.ts'],

    // Forks give each test file its own process, so child processes, signals and process.exit in
    // one file cannot reach another.
    pool: 'forks',
    // Two files at a time: fleet tests start several Node processes each, and CI runs on 2 cores.
    maxWorkers: 2,

    globalSetup: ['test/setup/global-redis.ts'],

    // Fleet and fault tests start processes and wait out short token lifetimes.
    testTimeout: 60_000,
    // Hooks may start Redis servers, containers and worker fleets.
    hookTimeout: 120_000,

    // An unhandled rejection or uncaught exception in a test file fails the run (exit code 1) even
    // when every test passed. That is vitest's default, set here explicitly so that a later edit does not turn it off.
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
