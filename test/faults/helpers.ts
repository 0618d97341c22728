// Shared pieces of the fault tests: a provider for the mock token endpoint, pino output captured
// in memory, deadlines for calls that must not hang, and an unhandled rejection recorder.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { quiqup, type TokenProvider } from '@tokenfleet/core';
import type { MockOAuthServer } from '@tokenfleet/mock-oauth';
import { type Logger, pino } from 'pino';

/** The client that the mock token endpoint accepts by default. */
export const CLIENT_ID = 'demo-client';
export const CLIENT_SECRET = 'demo-secret';

/** One parsed pino line. */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** pino's numeric levels, for filtering captured lines. */
export const LOG_LEVEL = Object.freeze({ debug: 20, info: 30, warn: 40, error: 50 });

export interface CapturedLogger {
  /** A debug-level logger that writes into `lines`. */
  logger: Logger;
  lines: LogLine[];
  /** Messages of the lines at `level`. */
  messagesAt(level: number): string[];
}

/** Creates a pino logger whose output is kept in memory, one parsed object per line. */
export function captureLogs(): CapturedLogger {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text.trim() !== '') {
          lines.push(JSON.parse(text) as LogLine);
        }
      }
      callback();
    },
  });
  const logger = pino({ level: 'debug' }, destination);
  return {
    logger,
    lines,
    messagesAt: (level) => lines.filter((line) => line.level === level).map((line) => line.msg),
  };
}

/** Creates a Quiqup provider aimed at the mock server, with the mock's default client. */
export function mockProvider(server: MockOAuthServer, clientSecret = CLIENT_SECRET): TokenProvider {
  return quiqup({ environment: 'staging', baseUrl: server.url, clientId: CLIENT_ID, clientSecret });
}

/**
 * Resolves with `promise`, or rejects when it has not settled within `timeoutMs`. The deadlines in
 * these tests are generous upper bounds that catch a hang, never latency assertions.
 */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** SHA-256 of a token, hex: how the mock server and the stored record name a token. */
export function sha256(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Scheduling state of a process from /proc (`R`, `S`, `T` for stopped…), or undefined once gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in brackets may contain spaces, so the state is read after its closing bracket.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/**
 * Records every unhandled promise rejection of this process while it is installed. vitest fails
 * the run on one as well, but it reports the file, not the test. A recorder checked in the test
 * fails that test and shows the rejection's reason.
 */
export function recordUnhandledRejections(): { reasons: unknown[]; uninstall(): void } {
  const reasons: unknown[] = [];
  const listener = (reason: unknown) => {
    reasons.push(reason);
  };
  process.on('unhandledRejection', listener);
  return {
    reasons,
    uninstall: () => {
      process.off('unhandledRejection', listener);
    },
  };
}
