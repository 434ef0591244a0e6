import { describe, expect, it } from 'vitest';
import { admittedProcedures } from './shedding';

describe('admittedProcedures', () => {
  it('holds the procedures admission controls, and none of the others', () => {
    for (const path of ['users.byId', 'users.list', 'users.create', 'users.update', 'users.delete', 'lab.sleep', 'lab.slowWrite', 'lab.cpu']) {
      expect(admittedProcedures.has(path), path).toBe(true);
    }
    for (const path of ['lab.setFaults', 'lab.faults', 'lab.clearFaults', 'activity.stats', 'activity.events', 'users.stream']) {
      expect(admittedProcedures.has(path), path).toBe(false);
    }
  });
});
