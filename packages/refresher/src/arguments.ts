import type { Logger } from 'pino';
import { pino } from 'pino';

/** Creates a `TypeError` with Node's `ERR_INVALID_ARG_TYPE` code. */
export function invalidArgType(path: string, expected: string, actual: unknown): TypeError {
  const error = new TypeError(`"${path}" must be ${expected}, received ${describeValue(actual)}`);
  return Object.assign(error, { code: 'ERR_INVALID_ARG_TYPE' });
}

/** Creates a `TypeError` with Node's `ERR_INVALID_ARG_VALUE` code. */
export function invalidArgValue(path: string, expected: string, actual: unknown): TypeError {
  const error = new TypeError(`"${path}" must be ${expected}, received ${describeValue(actual)}`);
  return Object.assign(error, { code: 'ERR_INVALID_ARG_VALUE' });
}

/** Checks an optional integer option and returns it, or `fallback` when it is undefined. */
export function integerOption(
  path: string,
  value: number | undefined,
  fallback: number,
  minimum: number,
): number {
  if (value === undefined) {
    return fallback;
  }
  if (typeof value !== 'number') {
    throw invalidArgType(path, 'a number', value);
  }
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw invalidArgValue(path, `an integer of at least ${minimum}`, value);
  }
  return value;
}

/** Checks an optional non-empty string option and returns it, or `fallback` when it is undefined. */
export function stringOption(path: string, value: string | undefined, fallback: string): string {
  if (value === undefined) {
    return fallback;
  }
  if (typeof value !== 'string' || value.length === 0) {
    throw invalidArgValue(path, 'a non-empty string', value);
  }
  return value;
}

/** Returns a child of the caller's logger for `component`, or a silent logger when there is none. */
export function componentLogger(logger: Logger | undefined, component: string): Logger {
  return (logger ?? pino({ enabled: false })).child({ component });
}

function describeValue(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  if (typeof value === 'string') {
    return `a string of length ${value.length}`;
  }
  return `type ${typeof value}`;
}
