import type { RouterOutputs } from '@asyncscope/api';
import { useSyncExternalStore } from 'react';
import { useServices } from '../services';
import { useClearFaults, useServerFaults } from './api';

type Fault = RouterOutputs['lab']['faults'][string];

/** One fault, as the banner and the server panel show it: "users.byId +800 ms, 5% errors". */
export function FaultCode({ procedure, fault }: { procedure: string; fault: Fault }) {
  return (
    <code>
      {procedure} +{fault.latencyMs} ms, {Math.round(fault.errorRate * 1000) / 10}% errors
    </code>
  );
}

/**
 * An injected fault slows every client of the server, not just this page: while one is set, it says so
 * across the top of every tab (the server panel's line at its foot was easy to miss, or hidden).
 */
export function FaultsBanner() {
  const { labFaults } = useServices();
  const held = useSyncExternalStore(labFaults.subscribe, labFaults.getHeld);
  const pinned = useSyncExternalStore(labFaults.subscribe, labFaults.getPinned);
  const faults = useServerFaults();
  const clear = useClearFaults();
  const entries = Object.entries(faults.data ?? {});
  if (entries.length === 0) return null;
  const whose = held === null ? 'Not set by a run on this page.' : pinned ? 'Kept after the run (“keep fault after the run” is ticked).' : 'Set by the lab’s run: cleared when the run ends or this page closes.';
  return (
    <div className="fault-banner" role="status" data-testid="fault-banner">
      <strong>Server-wide fault{entries.length > 1 ? 's' : ''} injected:</strong>
      {entries.map(([procedure, f]) => (
        <FaultCode key={procedure} procedure={procedure} fault={f} />
      ))}
      <span>every client’s calls to {entries.length > 1 ? 'these procedures' : 'it'} are slowed or fail until cleared.</span>
      <span className="fault-whose">{whose}</span>
      <button type="button" className="btn" disabled={clear.isPending} onClick={() => { clear.mutate(); }}>
        Clear faults
      </button>
    </div>
  );
}
