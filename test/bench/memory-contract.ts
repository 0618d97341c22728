// What memory-worker.ts and memory.bench.ts agree on. It lives apart from the worker because
// importing the worker would run it.

/** Client id of the `index`-th mock client of the memory measurement. */
export function memoryClientId(index: number): string {
  return `bench-client-${String(index).padStart(4, '0')}`;
}

export interface MemoryWorkerResult {
  tokens: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Memory of Buffers and ArrayBuffers outside the V8 heap. */
  externalBytes: number;
  /** Connections open at the Redis server after the reading, the bench's own included. */
  redisClients: number;
}
