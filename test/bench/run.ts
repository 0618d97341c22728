// `pnpm bench`: runs every measurement against a redis-server of its own and mock OAuth servers
// on 127.0.0.1, prints a table per measurement and writes BENCHMARKS.md at the repository root.
//
// Flags: `--only=hot-path,cold-start` runs some measurements; `--quick` runs fewer rounds. Either
// flag prints the tables without writing BENCHMARKS.md.
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { REPO_ROOT } from '../harness/processes.js';
import { spawnRedisServer } from '../harness/redis.js';
import type { BenchContext, Section } from './bench-context.js';
import { runColdStart } from './cold-start.bench.js';
import { runHotPath } from './hot-path.bench.js';
import { runMemory } from './memory.bench.js';
import { runPropagation } from './propagation.bench.js';
import { runRedisCost } from './redis-cost.bench.js';
import { runRenewal } from './renewal.bench.js';
import { readMachineInfo, renderBenchmarks, renderSectionForTerminal } from './report.js';

/** Bare pub/sub p99 of the propagation measurement, which the cold-start target builds on. */
interface SharedFigures {
  bareP99Ms?: number;
}

interface Measurement {
  name: string;
  run(context: BenchContext, quick: boolean, shared: SharedFigures): Promise<Section[]>;
}

const MEASUREMENTS: readonly Measurement[] = [
  {
    name: 'hot-path',
    run: async (context, quick) => [
      await runHotPath(context, { rounds: quick ? 3 : 9, roundMs: quick ? 150 : 300 }),
    ],
  },
  {
    name: 'propagation',
    run: async (context, quick, shared) => {
      const result = await runPropagation(context, {
        pods: 16,
        rounds: quick ? 5 : 20,
        diagnosticRounds: quick ? 3 : 10,
      });
      shared.bareP99Ms = result.bareP99Ms;
      return [result.section];
    },
  },
  {
    name: 'cold-start',
    run: async (context, quick, shared) => [
      (
        await runColdStart(context, {
          processCounts: [1, 4, 16],
          callers: 500,
          repetitions: quick ? 2 : 5,
          upstreamLatencyMs: 50,
          bareP99Ms: shared.bareP99Ms,
        })
      ).section,
    ],
  },
  {
    name: 'renewal',
    run: async (context, quick) => [
      ...(await runRenewal(context, { pods: 8, renewals: quick ? 6 : 24 })).sections,
    ],
  },
  {
    name: 'redis-cost',
    run: async (context, quick) => [
      (await runRedisCost(context, { rounds: quick ? 3 : 7, calls: 100_000 })).section,
    ],
  },
  {
    name: 'memory',
    run: async (context, quick) => [
      await runMemory(context, { tokens: 1_000, rounds: quick ? 2 : 5 }),
    ],
  },
];

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyArg = args.find((arg) => arg.startsWith('--only='));
const only = onlyArg?.slice('--only='.length).split(',');
const unknown = only?.filter((name) => !MEASUREMENTS.some((m) => m.name === name)) ?? [];
if (unknown.length > 0) {
  throw new Error(
    `unknown measurement ${unknown.join(', ')} in --only; expected some of: ${MEASUREMENTS.map((m) => m.name).join(', ')}`,
  );
}
const selected = MEASUREMENTS.filter((m) => only === undefined || only.includes(m.name));

/** Paragraphs of BENCHMARKS.md before the first measurement. */
const PREAMBLE = [
  'Every process of the bench runs on this machine: the bench process (the mock token ' +
    'endpoints, the refresher of measurement 4), the redis-server that it starts, and worker ' +
    'processes that play the pods, each started with `node --import tsx`. Nothing is sent to ' +
    'another host. When there are more processes than cores, figures that involve many ' +
    'processes measure the scheduler as much as the code; the ratios compare variants that ran ' +
    'under the same conditions.',
  'The hot path of `FleetTokenCache.getToken()` (`packages/core/src/token-cache.ts`) was changed ' +
    'for measurement 1: it returns one resolved promise per token instead of a new one per call, ' +
    'and while the token is more than 1 s from its refresh-ahead time it skips the clock reading ' +
    'on 63 of 64 calls, with an unref-ed timer ending that stretch. Before the change, two runs ' +
    'of the same measurement on this machine gave 0.45 and 0.63 x the in-memory floor; the ' +
    '`performance.now()` call took about as long as the rest of the call.',
];

const startedAt = new Date();
const started = performance.now();
const loadAtStart = loadavg()[0]!;
const server = await spawnRedisServer();
const admin = new Redis(server.url);
const context: BenchContext = {
  redisUrl: server.url,
  admin,
  log: (message) => console.log(`[bench ${formatElapsed()}] ${message}`),
};

try {
  const machine = await readMachineInfo(admin);
  context.log(
    `redis-server ${machine.redis} on ${server.url}; ${machine.cores} cores, ${machine.cpuModel}`,
  );

  const shared: SharedFigures = {};
  const sections: Section[] = [];
  for (const measurement of selected) {
    const measured = await measurement.run(context, quick, shared);
    for (const section of measured) {
      console.log(`\n${renderSectionForTerminal(section)}\n`);
    }
    sections.push(...measured);
  }

  const durationS = (performance.now() - started) / 1000;
  context.log(`done in ${Math.round(durationS)} s`);
  if (quick || only !== undefined) {
    context.log('--quick or --only given: BENCHMARKS.md is left as it is');
  } else {
    const markdown = renderBenchmarks({
      machine,
      command: 'pnpm bench',
      startedAt,
      durationS,
      loadAverage: [loadAtStart, loadavg()[0]!],
      // The measurements run in the order that the cold-start target needs; the page keeps the
      // order of their numbers.
      sections: [...sections].sort((a, b) =>
        a.title.localeCompare(b.title, 'en', { numeric: true }),
      ),
      preamble: PREAMBLE,
    });
    const path = join(REPO_ROOT, 'BENCHMARKS.md');
    await writeFile(path, markdown);
    context.log(`wrote ${path}`);
  }
} finally {
  await admin.quit();
  await server.stop();
}

function formatElapsed(): string {
  return `${((performance.now() - started) / 1000).toFixed(1)} s`;
}
