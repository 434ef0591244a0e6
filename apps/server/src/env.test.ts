import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EnvError, readEnv } from './env';

describe('readEnv: the limits that keep one client from shutting out the others, and the lab switch', () => {
  it('has defaults', () => {
    const env = readEnv({});
    expect(env).toMatchObject({ BODY_TIMEOUT_MS: 10_000, MAX_BATCH_SIZE: 50, MAX_QUEUE_PER_CLIENT: 250, LAB: 'on' });
  });

  it('reads them', () => {
    expect(readEnv({ LAB: 'off', BODY_TIMEOUT_MS: '2500', MAX_BATCH_SIZE: '10', MAX_QUEUE_PER_CLIENT: '0' })).toMatchObject({
      LAB: 'off',
      BODY_TIMEOUT_MS: 2500,
      MAX_BATCH_SIZE: 10,
      MAX_QUEUE_PER_CLIENT: 0,
    });
  });

  it('resolves relative DATA_DIR and DASHBOARD_DIR from the checkout (pnpm runs the server in apps/server)', () => {
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    expect(readEnv({ DATA_DIR: 'mydata', DASHBOARD_DIR: 'web' })).toMatchObject({ DATA_DIR: join(root, 'mydata'), DASHBOARD_DIR: join(root, 'web') });
    expect(readEnv({ DATA_DIR: '/abs/data' }).DATA_DIR).toBe('/abs/data');
  });

  it.each([
    ['LAB', 'maybe', /LAB="maybe": LAB must be on or off/],
    ['BODY_TIMEOUT_MS', '5', /BODY_TIMEOUT_MS="5": BODY_TIMEOUT_MS must be between 100 and 600000/],
    ['MAX_BATCH_SIZE', '0', /MAX_BATCH_SIZE="0"/],
  ])('refuses %s=%s, naming it', (name, value, message) => {
    expect(() => readEnv({ [name]: value })).toThrow(EnvError);
    expect(() => readEnv({ [name]: value })).toThrow(message);
  });
});

describe('readEnv: WebSocket limits', () => {
  it('has defaults and reads them', () => {
    expect(readEnv({})).toMatchObject({ WS_MAX_CALLS_PER_SOCKET: 1000, WS_MAX_SOCKETS_PER_TOKEN: 64 });
    expect(readEnv({ WS_MAX_CALLS_PER_SOCKET: '50', WS_MAX_SOCKETS_PER_TOKEN: '2' })).toMatchObject({ WS_MAX_CALLS_PER_SOCKET: 50, WS_MAX_SOCKETS_PER_TOKEN: 2 });
  });
  it.each([
    ['WS_MAX_CALLS_PER_SOCKET', '0', /WS_MAX_CALLS_PER_SOCKET="0": WS_MAX_CALLS_PER_SOCKET must be between 1 and 100000/],
    ['WS_MAX_SOCKETS_PER_TOKEN', 'many', /WS_MAX_SOCKETS_PER_TOKEN="many": WS_MAX_SOCKETS_PER_TOKEN must be a whole number/],
  ])('refuses %s=%s, naming it', (name, value, message) => {
    expect(() => readEnv({ [name]: value })).toThrow(message);
  });
});
