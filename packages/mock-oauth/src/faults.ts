import { invalidArgType, invalidArgValue, isPlainObject } from './invalid-argument.js';

/**
 * Faults of `POST /oauth/token`. When several are set, the first in this order decides the
 * response: `noAnswer`, `latencyMs` (a delay before anything else), `resetConnection`,
 * `rateLimit`, `htmlBody`, `body`, `status`; `reuseToken`, `revokePrevious`, `overrideFields`
 * and `omitFields` change a normal token response.
 */
export interface TokenEndpointFaults {
  /** Delay before the response (or the reset), in milliseconds; 0 means none. */
  latencyMs?: number;
  /**
   * HTTP status of the response. Alone, a status of 300 or more sends an OAuth2 error body
   * (`server_error` for 5xx) without checking the client, and a 2xx status sends a normal token
   * response with that status. With `htmlBody` or `body` it sets their status (default 200).
   */
  status?: number;
  /** An HTML body to send, or `true` for a built-in 5 KB error page, as a proxy would send. */
  htmlBody?: string | true;
  /** A raw body to send instead of the token response: a string as is, other values as JSON. */
  body?: unknown;
  /** `Content-Type` of `body`. Default `application/json; charset=utf-8`. */
  contentType?: string;
  /** Respond 429 with `Retry-After: retryAfterSeconds` (a whole number of seconds, 0 or more). */
  rateLimit?: { retryAfterSeconds: number };
  /**
   * Hand back the client's newest active token again, with `expires_in` counting down its
   * remaining life and its original `created_at`. A client without one gets a new token.
   */
  reuseToken?: boolean;
  /** Each new token revokes every earlier token of the same client. */
  revokePrevious?: boolean;
  /** Destroy the socket without sending a response. */
  resetConnection?: boolean;
  /** Never respond; the request stays open until the client gives up or the server closes. */
  noAnswer?: boolean;
  /** Fields to set in a token response, such as `{ expires_in: '3600' }` or `{ token_type: 'Bearer' }`. */
  overrideFields?: Record<string, unknown>;
  /** Fields to remove from a token response, such as `['expires_in']`. */
  omitFields?: string[];
}

/** Faults of the protected resource `/api/orders`. */
export interface ResourceFaults {
  /** Respond 401 to every request, whatever token it carries. */
  alwaysUnauthorized?: boolean;
}

/** Every fault that {@link MockOAuthServer.setFaults} takes. */
export interface MockOAuthFaults extends TokenEndpointFaults {
  /**
   * Apply the token endpoint faults to the next `times` token requests only, then clear them.
   * Resource faults stay until `clearFaults()`. Default: until `clearFaults()`.
   */
  times?: number;
  resource?: ResourceFaults;
}

/** Longest `latencyMs`: the largest delay that `setTimeout` accepts (2^31 - 1 ms, about 24.8 days). */
const MAX_LATENCY_MS = 2 ** 31 - 1;

const BOOLEAN_FAULTS = ['reuseToken', 'revokePrevious', 'resetConnection', 'noAnswer'] as const;
const KNOWN_FAULTS = new Set<string>([
  ...BOOLEAN_FAULTS,
  'latencyMs',
  'status',
  'htmlBody',
  'body',
  'contentType',
  'rateLimit',
  'overrideFields',
  'omitFields',
  'times',
  'resource',
]);

/**
 * Holds the current faults and hands each token request the faults that apply to it, counting
 * down `times`.
 */
export class FaultController {
  private tokenFaults: TokenEndpointFaults | undefined;
  private remainingTimes: number | undefined;
  private resource: ResourceFaults = {};

  /** Replaces every fault with `faults`; throws `TypeError` on an invalid one and keeps the old. */
  set(faults: MockOAuthFaults): void {
    const valid = validateFaults(faults);
    const { times, resource, ...tokenFaults } = valid;

    this.tokenFaults = Object.keys(tokenFaults).length > 0 ? tokenFaults : undefined;
    this.remainingTimes = this.tokenFaults === undefined ? undefined : times;
    this.resource = resource ?? {};
  }

  clear(): void {
    this.tokenFaults = undefined;
    this.remainingTimes = undefined;
    this.resource = {};
  }

  /** Returns a copy of the current faults, with `times` set to the requests still to fault. */
  current(): MockOAuthFaults {
    const faults: MockOAuthFaults = structuredClone(this.tokenFaults ?? {});
    if (this.remainingTimes !== undefined) {
      faults.times = this.remainingTimes;
    }
    if (Object.keys(this.resource).length > 0) {
      faults.resource = { ...this.resource };
    }
    return faults;
  }

  /** Returns the faults for one token request and counts it against `times`. */
  takeTokenFaults(): TokenEndpointFaults {
    const faults = this.tokenFaults;
    if (faults === undefined) {
      return {};
    }

    if (this.remainingTimes !== undefined) {
      this.remainingTimes -= 1;
      if (this.remainingTimes <= 0) {
        this.tokenFaults = undefined;
        this.remainingTimes = undefined;
      }
    }
    return faults;
  }

  resourceFaults(): ResourceFaults {
    return this.resource;
  }
}

/**
 * Checks a faults object, from code or from JSON of `POST /__faults`, and returns a deep copy.
 * Unknown names are rejected so that a typo does not silently set no fault.
 */
export function validateFaults(input: unknown): MockOAuthFaults {
  if (!isPlainObject(input)) {
    throw invalidArgType('faults', 'an object', input);
  }
  for (const name of Object.keys(input)) {
    if (!KNOWN_FAULTS.has(name)) {
      throw invalidArgValue(`faults.${name}`, 'is not a known fault');
    }
  }

  const faults: MockOAuthFaults = {};
  for (const name of BOOLEAN_FAULTS) {
    const value = input[name];
    if (value !== undefined && typeof value !== 'boolean') {
      throw invalidArgType(`faults.${name}`, 'a boolean', value);
    }
    if (value === true) {
      faults[name] = true;
    }
  }

  copyNumber(
    input,
    faults,
    'latencyMs',
    (value) => Number.isFinite(value) && value >= 0 && value <= MAX_LATENCY_MS,
    `a number of milliseconds from 0 to ${MAX_LATENCY_MS}`,
  );
  copyNumber(
    input,
    faults,
    'status',
    (value) => Number.isInteger(value) && value >= 200 && value <= 599,
    'an integer from 200 to 599',
  );
  copyNumber(
    input,
    faults,
    'times',
    (value) => Number.isInteger(value) && value >= 1,
    'an integer, 1 or more',
  );

  copyBodies(input, faults);
  copyRateLimit(input, faults);
  copyFieldEdits(input, faults);
  copyResource(input, faults);
  return faults;
}

function copyNumber(
  input: Record<string, unknown>,
  faults: MockOAuthFaults,
  name: 'latencyMs' | 'status' | 'times',
  isValid: (value: number) => boolean,
  requirement: string,
): void {
  const value = input[name];
  if (value === undefined) {
    return;
  }
  if (typeof value !== 'number') {
    throw invalidArgType(`faults.${name}`, 'a number', value);
  }
  if (!isValid(value)) {
    throw invalidArgValue(`faults.${name}`, `must be ${requirement}`, value);
  }
  faults[name] = value;
}

function copyBodies(input: Record<string, unknown>, faults: MockOAuthFaults): void {
  const { htmlBody, body, contentType } = input;
  if (htmlBody !== undefined && htmlBody !== true && typeof htmlBody !== 'string') {
    throw invalidArgType('faults.htmlBody', 'a string or true', htmlBody);
  }
  if (htmlBody !== undefined && body !== undefined) {
    throw invalidArgValue('faults.htmlBody', 'cannot be combined with "faults.body"');
  }
  if (contentType !== undefined && typeof contentType !== 'string') {
    throw invalidArgType('faults.contentType', 'a string', contentType);
  }

  if (htmlBody !== undefined) {
    faults.htmlBody = htmlBody;
  }
  if (body !== undefined) {
    faults.body = typeof body === 'string' ? body : structuredClone(body);
  }
  if (contentType !== undefined) {
    faults.contentType = contentType;
  }
}

function copyRateLimit(input: Record<string, unknown>, faults: MockOAuthFaults): void {
  const { rateLimit } = input;
  if (rateLimit === undefined) {
    return;
  }
  if (!isPlainObject(rateLimit)) {
    throw invalidArgType('faults.rateLimit', 'an object with retryAfterSeconds', rateLimit);
  }

  const seconds = rateLimit.retryAfterSeconds;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0) {
    throw invalidArgValue(
      'faults.rateLimit.retryAfterSeconds',
      'must be an integer number of seconds, 0 or more',
      seconds,
    );
  }
  faults.rateLimit = { retryAfterSeconds: seconds };
}

function copyFieldEdits(input: Record<string, unknown>, faults: MockOAuthFaults): void {
  const { overrideFields, omitFields } = input;
  if (overrideFields !== undefined) {
    if (!isPlainObject(overrideFields)) {
      throw invalidArgType('faults.overrideFields', 'an object', overrideFields);
    }
    faults.overrideFields = structuredClone(overrideFields);
  }

  if (omitFields !== undefined) {
    if (!Array.isArray(omitFields) || !omitFields.every((field) => typeof field === 'string')) {
      throw invalidArgType('faults.omitFields', 'an array of field names', omitFields);
    }
    faults.omitFields = [...omitFields];
  }
}

function copyResource(input: Record<string, unknown>, faults: MockOAuthFaults): void {
  const { resource } = input;
  if (resource === undefined) {
    return;
  }
  if (!isPlainObject(resource)) {
    throw invalidArgType('faults.resource', 'an object', resource);
  }
  for (const name of Object.keys(resource)) {
    if (name !== 'alwaysUnauthorized') {
      throw invalidArgValue(`faults.resource.${name}`, 'is not a known resource fault');
    }
  }

  const { alwaysUnauthorized } = resource;
  if (alwaysUnauthorized !== undefined && typeof alwaysUnauthorized !== 'boolean') {
    throw invalidArgType('faults.resource.alwaysUnauthorized', 'a boolean', alwaysUnauthorized);
  }
  faults.resource = alwaysUnauthorized === true ? { alwaysUnauthorized: true } : {};
}
