export * from './users';
export * from './lab';
export * from './text';
