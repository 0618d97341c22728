import { inspect } from 'node:util';

/** A `TypeError` with Node's `code` property, so callers can tell a caller mistake by its code. */
export type InvalidArgumentError = TypeError & {
  code: 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE';
};

/** Creates the error for a value of the wrong type, such as a string where a number belongs. */
export function invalidArgType(
  path: string,
  expected: string,
  actual: unknown,
): InvalidArgumentError {
  const error = new TypeError(
    `"${path}" must be ${expected}, received ${describe(actual)}`,
  ) as InvalidArgumentError;
  error.code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

/**
 * Creates the error for a value of the right type that is out of range or conflicts with another.
 * The message shows `actual` unless it is `undefined`.
 */
export function invalidArgValue(
  path: string,
  requirement: string,
  actual?: unknown,
): InvalidArgumentError {
  const received = actual === undefined ? '' : `, received ${describe(actual)}`;
  const error = new TypeError(`"${path}" ${requirement}${received}`) as InvalidArgumentError;
  error.code = 'ERR_INVALID_ARG_VALUE';
  return error;
}

/** Returns whether a value is a plain object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return inspect(value, { depth: 0, maxStringLength: 40, breakLength: Number.POSITIVE_INFINITY });
}
