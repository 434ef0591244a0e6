import { describe, expect, it } from 'vitest';
import { PAGE_TRANSPORT } from './services';

describe('the page’s transport', () => {
  it('the page’s own traffic rides the WebSocket by default', () => {
    expect(PAGE_TRANSPORT).toBe('websocket');
  });
});
