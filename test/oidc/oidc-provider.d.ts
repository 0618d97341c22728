// oidc-provider 9.13.3 ships no type declarations. This declares only the part of its API that
// oidc-server.ts uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** Client metadata as registered in `configuration.clients` (RFC 7591 names). */
  export interface ClientMetadata {
    client_id: string;
    client_secret?: string;
    token_endpoint_auth_method?: string;
    grant_types?: string[];
    redirect_uris?: string[];
    response_types?: string[];
  }

  /** A stored artifact, such as a token, grant or session, in the form that the adapter stores. */
  export interface AdapterPayload {
    [key: string]: unknown;
    uid?: string;
    userCode?: string;
    grantId?: string;
    consumed?: number;
  }

  /** Storage of one model, such as `ClientCredentials`; `expiresIn` is in seconds. */
  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  /** The client of the current request, as the provider resolved it. */
  export interface ClientInfo {
    readonly clientId: string;
  }

  /** The token that an introspection request presents. */
  export interface IntrospectedToken {
    readonly clientId?: string;
  }

  /** The Koa context with the provider's `oidc` state. */
  export interface ProviderContext {
    readonly method: string;
    readonly path: string;
    status: number;
    readonly oidc?: { readonly client?: ClientInfo };
  }

  export interface Configuration {
    adapter?: (model: string) => Adapter;
    clients?: ClientMetadata[];
    cookies?: { keys?: string[] };
    features?: {
      clientCredentials?: { enabled: boolean };
      devInteractions?: { enabled: boolean };
      introspection?: {
        enabled: boolean;
        allowedPolicy?: (
          ctx: ProviderContext,
          client: ClientInfo,
          token: IntrospectedToken,
        ) => Promise<boolean> | boolean;
      };
      revocation?: { enabled: boolean };
    };
    jwks?: { keys: Record<string, unknown>[] };
    routes?: { token?: string; introspection?: string };
    ttl?: { ClientCredentials?: number };
  }

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    /** Koa's request listener for `http.createServer()`. */
    callback(): (request: IncomingMessage, response: ServerResponse) => void;
    /** Adds Koa middleware that runs before the provider's routes. */
    use(middleware: (ctx: ProviderContext, next: () => Promise<void>) => Promise<void>): this;
    on(event: 'grant.success', listener: (ctx: ProviderContext) => void): this;
    on(event: 'grant.error', listener: (ctx: ProviderContext, err: Error) => void): this;
  }

  export default Provider;
}
