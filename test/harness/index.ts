export * from './processes.js';
export * from './redis.js';
export * from './wait-for.js';
export * from './worker-io.js';
