// The benchmark report: a table per measurement on stdout, and BENCHMARKS.md.
import { cpus, release, totalmem, type } from 'node:os';
import type { Redis } from 'ioredis';
import type { Figure, Section } from './bench-context.js';

/** The machine and software that produced the numbers. */
export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  redis: string;
}

/** Reads the machine, Node and OS, and the version of the bench's redis-server. */
export async function readMachineInfo(admin: Redis): Promise<MachineInfo> {
  const serverInfo = await admin.info('server');
  const redisVersion = /redis_version:(\S+)/.exec(serverInfo)?.[1] ?? 'unknown';
  const processors = cpus();
  return {
    cores: processors.length,
    cpuModel: processors[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${type()} ${release()}`,
    redis: redisVersion,
  };
}

/** Formats a number with `digits` decimals and thin grouping of thousands. */
export function formatNumber(value: number, digits = 2): string {
  if (!Number.isFinite(value)) {
    return String(value);
  }
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** Renders the figures of one section as a Markdown table. */
export function renderTable(figures: readonly Figure[]): string {
  const header = '| figure | median | min - max | IQR (q1 - q3) | runs | unit | target | met |';
  const rule = '| --- | ---: | ---: | ---: | ---: | --- | --- | --- |';
  const rows = figures.map((figure) => {
    const { summary } = figure;
    const digits = figure.digits ?? 2;
    const cells = [
      figure.name,
      formatNumber(summary.median, digits),
      `${formatNumber(summary.min, digits)} - ${formatNumber(summary.max, digits)}`,
      `${formatNumber(summary.q1, digits)} - ${formatNumber(summary.q3, digits)}`,
      String(summary.runs),
      figure.unit,
      figure.target ?? '',
      figure.met === undefined ? '' : figure.met ? 'yes' : '**no**',
    ];
    return `| ${cells.join(' | ')} |`;
  });
  return [header, rule, ...rows].join('\n');
}

export interface ReportInput {
  machine: MachineInfo;
  command: string;
  startedAt: Date;
  durationS: number;
  /** One-minute load average at the start and at the end of the run. */
  loadAverage: [number, number];
  sections: readonly Section[];
  /** Markdown paragraphs before the first section. */
  preamble: readonly string[];
}

/** Renders the whole of BENCHMARKS.md. */
export function renderBenchmarks(input: ReportInput): string {
  const { machine } = input;
  const lines = [
    '# Benchmarks',
    '',
    'These numbers come from `pnpm bench` (`test/bench/run.ts`), which writes this page. Every ' +
      'figure is the median over several runs, with the spread of those runs. Ratios are taken ' +
      'between variants measured in the same run.',
    '',
    '| | |',
    '| --- | --- |',
    `| command | \`${input.command}\` |`,
    `| date | ${input.startedAt.toISOString()} (run took ${Math.round(input.durationS)} s) |`,
    `| cores | ${machine.cores} |`,
    `| CPU | ${machine.cpuModel} |`,
    `| memory | ${machine.memoryGiB} GiB |`,
    `| Node.js | ${machine.node} |`,
    `| OS | ${machine.os} |`,
    `| Redis | redis-server ${machine.redis}, started by the bench on 127.0.0.1 with persistence off |`,
    `| load average (1 min) | ${input.loadAverage[0].toFixed(2)} at the start, ${input.loadAverage[1].toFixed(2)} at the end |`,
    '',
    ...input.preamble.flatMap((paragraph) => [paragraph, '']),
  ];

  for (const section of input.sections) {
    lines.push(`## ${section.title}`, '', section.setup, '', renderTable(section.figures), '');
    for (const note of section.notes) {
      lines.push(note, '');
    }
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

/** Renders one section for the terminal. */
export function renderSectionForTerminal(section: Section): string {
  return [`== ${section.title}`, renderTable(section.figures), ...section.notes].join('\n');
}
