import { invalidArgument } from '../errors.js';
import type { TokenProvider, TokenRequestContext } from '../provider.js';
import {
  checkClientOptions,
  checkHttpUrl,
  checkNonEmptyString,
  createProvider,
  globalFetch,
  sendTokenRequest,
  shortClientId,
  type TokenRequest,
} from './send-token-request.js';

/** Client authentication method at the token endpoint (RFC 6749 section 2.3.1). */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

/** Encoding of the token request body. */
export type TokenRequestBodyFormat = 'form' | 'json';

/** Defaults of {@link OAuth2ClientCredentialsOptions}. */
export const DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS = Object.freeze({
  /** RFC 6749 section 2.3.1 requires servers to support HTTP Basic, but not the body method. */
  authMethod: 'client_secret_basic' as ClientAuthMethod,
  /** RFC 6749 section 4.4.2 defines the request as application/x-www-form-urlencoded. */
  bodyFormat: 'form' as TokenRequestBodyFormat,
  /**
   * 5 minutes, Keycloak's default access token lifespan (realm setting `accessTokenLifespan: 300`).
   * RFC 6749 leaves the lifetime of a token without `expires_in` to the server, and a short
   * guess renews such a token early rather than sending it after it ended.
   */
  defaultExpiresInMs: 300_000,
});

/** Parameters that the provider sets itself, so `extraParams` may not override them. */
const RESERVED_PARAMS: Readonly<Record<string, string>> = Object.freeze({
  grant_type: 'the provider always sends client_credentials',
  client_id: 'use options.clientId',
  client_secret: 'use options.clientSecret',
  scope: 'use options.scope',
  audience: 'use options.audience',
  resource: 'use options.resource',
});

/** Options of {@link oauth2ClientCredentials}. */
export interface OAuth2ClientCredentialsOptions {
  /** Token endpoint URL, http or https, without user info. */
  tokenUrl: string | URL;
  clientId: string;
  /** Client secret, never logged or stored. It is also the default source of the sealing key. */
  clientSecret: string;
  /** `scope` parameter: a space-separated string or a list of scopes. Default: not sent. */
  scope?: string | readonly string[];
  /** `audience` parameter, as Auth0 and others expect it. Default: not sent. */
  audience?: string;
  /** `resource` parameter (RFC 8707). A list sends one parameter per entry. Default: not sent. */
  resource?: string | readonly string[];
  /**
   * `client_secret_basic` sends the credentials in an `Authorization: Basic` header,
   * `client_secret_post` sends them as `client_id` and `client_secret` body parameters.
   * Default: `client_secret_basic`.
   */
  authMethod?: ClientAuthMethod;
  /**
   * `form` sends `application/x-www-form-urlencoded` as RFC 6749 defines it. `json` sends a JSON
   * object, for servers such as Quiqup that expect one. Default: `form`.
   */
  bodyFormat?: TokenRequestBodyFormat;
  /**
   * More body parameters, sent as given and part of the token identity. They may not set
   * `grant_type`, `client_id`, `client_secret`, `scope`, `audience` or `resource`. Default: none.
   */
  extraParams?: Readonly<Record<string, string>>;
  /**
   * Lifetime assumed when a token response has no `expires_in`, in milliseconds. Must be > 0.
   * Default: {@link DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS}.defaultExpiresInMs (5 minutes).
   */
  defaultExpiresInMs?: number;
  /** `fetch` implementation for the token request. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * Creates a provider for any OAuth2 token endpoint that supports the client-credentials grant
 * (RFC 6749 section 4.4). Throws `TypeError` (code `ERR_INVALID_ARG_TYPE` or
 * `ERR_INVALID_ARG_VALUE`) for invalid options.
 */
export function oauth2ClientCredentials(options: OAuth2ClientCredentialsOptions): TokenProvider {
  checkClientOptions(options, 'oauth2ClientCredentials');
  const settings = resolveSettings(options);
  const params = buildParams(settings);
  const sendOptions = {
    fetch: options.fetch ?? globalFetch,
    defaultExpiresInMs:
      options.defaultExpiresInMs ?? DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS.defaultExpiresInMs,
    secrets: [settings.clientSecret],
  };

  return createProvider(
    {
      name: 'oauth2',
      identity: Object.freeze(buildIdentity(settings)),
      label: `oauth2 ${settings.tokenUrl.host} client ${shortClientId(settings.clientId)}`,
      requestToken(context: TokenRequestContext) {
        return sendTokenRequest(buildRequest(settings, params), context, sendOptions);
      },
    },
    settings.clientSecret,
  );
}

interface Settings {
  tokenUrl: URL;
  clientId: string;
  clientSecret: string;
  scope: string | undefined;
  audience: string | undefined;
  resources: string[];
  authMethod: ClientAuthMethod;
  bodyFormat: TokenRequestBodyFormat;
  /** Extra parameters sorted by name, so the identity and the body do not depend on key order. */
  extraParams: [string, string][];
}

function resolveSettings(options: OAuth2ClientCredentialsOptions): Settings {
  const defaults = DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS;
  const authMethod = options.authMethod ?? defaults.authMethod;
  if (authMethod !== 'client_secret_basic' && authMethod !== 'client_secret_post') {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"options.authMethod" must be 'client_secret_basic' or 'client_secret_post' (received ${JSON.stringify(authMethod)})`,
    );
  }
  const bodyFormat = options.bodyFormat ?? defaults.bodyFormat;
  if (bodyFormat !== 'form' && bodyFormat !== 'json') {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"options.bodyFormat" must be 'form' or 'json' (received ${JSON.stringify(bodyFormat)})`,
    );
  }
  if (options.audience !== undefined) {
    checkNonEmptyString(options.audience, 'options.audience');
  }

  const scopes = readStringList(options.scope, 'options.scope');
  return {
    tokenUrl: checkHttpUrl(options.tokenUrl, 'options.tokenUrl'),
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    // Scopes are space-separated tokens (RFC 6749 section 3.3), so runs of spaces collapse to one.
    scope:
      scopes.length === 0 ? undefined : scopes.flatMap((scope) => scope.split(/\s+/)).join(' '),
    audience: options.audience,
    resources: readStringList(options.resource, 'options.resource'),
    authMethod,
    bodyFormat,
    extraParams: readExtraParams(options.extraParams),
  };
}

/** Reads an optional string or list of strings. A list must contain at least one entry. */
function readStringList(value: unknown, path: string): string[] {
  if (value === undefined) {
    return [];
  }
  if (!Array.isArray(value)) {
    checkNonEmptyString(value, path);
    return [value.trim()];
  }
  if (value.length === 0) {
    throw invalidArgument('ERR_INVALID_ARG_VALUE', `"${path}" must not be an empty list`);
  }
  return value.map((entry, index) => {
    checkNonEmptyString(entry, `${path}[${index}]`);
    return entry.trim();
  });
}

function readExtraParams(value: unknown): [string, string][] {
  if (value === undefined) {
    return [];
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      '"options.extraParams" must be an object of string values',
    );
  }

  const entries = Object.entries(value).sort(compareByName);
  for (const [name, paramValue] of entries) {
    const path = `options.extraParams.${name}`;
    if (Object.hasOwn(RESERVED_PARAMS, name)) {
      throw invalidArgument(
        'ERR_INVALID_ARG_VALUE',
        `"${path}" is set by the provider: ${RESERVED_PARAMS[name]}`,
      );
    }
    if (typeof paramValue !== 'string') {
      throw invalidArgument(
        'ERR_INVALID_ARG_TYPE',
        `"${path}" must be a string (received ${typeof paramValue})`,
      );
    }
  }
  return entries as [string, string][];
}

/** Sorts by UTF-16 code units, so the order does not depend on the locale. */
function compareByName([a]: [string, unknown], [b]: [string, unknown]): number {
  if (a === b) {
    return 0;
  }
  return a < b ? -1 : 1;
}

/** Lists every setting that changes the token, never the secret, in a fixed key order. */
function buildIdentity(settings: Settings): Record<string, string> {
  const identity: Record<string, string> = {
    tokenUrl: settings.tokenUrl.href,
    clientId: settings.clientId,
  };
  if (settings.scope !== undefined) {
    identity.scope = settings.scope;
  }
  if (settings.audience !== undefined) {
    identity.audience = settings.audience;
  }
  if (settings.resources.length > 0) {
    identity.resource = settings.resources.join(' ');
  }
  for (const [name, value] of settings.extraParams) {
    identity[`extraParams.${name}`] = value;
  }
  return identity;
}

/** Lists the body parameters in the order they are sent. `resource` may repeat. */
function buildParams(settings: Settings): [string, string][] {
  const params: [string, string][] = [['grant_type', 'client_credentials']];
  if (settings.authMethod === 'client_secret_post') {
    params.push(['client_id', settings.clientId], ['client_secret', settings.clientSecret]);
  }
  if (settings.scope !== undefined) {
    params.push(['scope', settings.scope]);
  }
  if (settings.audience !== undefined) {
    params.push(['audience', settings.audience]);
  }
  for (const resource of settings.resources) {
    params.push(['resource', resource]);
  }
  params.push(...settings.extraParams);
  return params;
}

function buildRequest(settings: Settings, params: [string, string][]): TokenRequest {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (settings.authMethod === 'client_secret_basic') {
    headers.authorization = basicAuthorization(settings.clientId, settings.clientSecret);
  }

  if (settings.bodyFormat === 'form') {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    return { url: settings.tokenUrl.href, headers, body: new URLSearchParams(params).toString() };
  }

  headers['content-type'] = 'application/json';
  const body: Record<string, string | string[]> = {};
  for (const [name, value] of params) {
    if (name !== 'resource') {
      body[name] = value;
    }
  }
  if (settings.resources.length > 0) {
    body.resource = settings.resources.length === 1 ? settings.resources[0]! : settings.resources;
  }
  return { url: settings.tokenUrl.href, headers, body: JSON.stringify(body) };
}

/**
 * RFC 6749 section 2.3.1: the client id and secret are each form-urlencoded before they are
 * joined with `:` and base64-encoded, so a `:` or non-ASCII character in either survives.
 */
function basicAuthorization(clientId: string, clientSecret: string): string {
  const credentials = `${formEncode(clientId)}:${formEncode(clientSecret)}`;
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}
