// What every measurement gets from the bench runner, and how it reports its figures.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RunSummary } from './stats.js';

/** The bench's own Redis server and a connection to it, shared by the measurements. */
export interface BenchContext {
  /** URL of the redis-server that the bench started for itself on 127.0.0.1. */
  redisUrl: string;
  /** A connection for control commands, counters and clean-up; measurements must not close it. */
  admin: Redis;
  /** Prints one progress line. */
  log(message: string): void;
}

/** One figure of a measurement, with its target when the task sets one. */
export interface Figure {
  name: string;
  unit: string;
  summary: RunSummary;
  /** Decimal places shown. Default 2. */
  digits?: number;
  /** The target in words, such as `>= 0.8`. */
  target?: string;
  met?: boolean;
}

/** The report of one measurement. */
export interface Section {
  title: string;
  /** Markdown: what ran, with which settings. */
  setup: string;
  figures: Figure[];
  /** Markdown paragraphs after the table: observations, missed targets and their reasons. */
  notes: string[];
}

/** Returns a Redis key prefix that no earlier bench run or phase shares. */
export function benchPrefix(name: string): string {
  return `tfbench:${name}:${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Deletes every key that starts with `prefix:`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } while (cursor !== '0');
}
