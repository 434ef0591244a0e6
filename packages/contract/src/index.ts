export * from './users';
export * from './lab';
export * from './text';
export * from './call-id';
export * from './calls';
