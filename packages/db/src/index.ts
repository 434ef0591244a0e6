export * from './client';
export * from './embedded';
export * from './migrate';
export * from './schema';
export * as schema from './schema';
export * from './scope';
export * from './errors';
export * from './health';
