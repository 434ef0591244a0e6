export * from './users';
export * from './lab';
