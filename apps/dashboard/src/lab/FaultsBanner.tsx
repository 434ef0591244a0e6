import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useSyncExternalStore } from 'react';
import { useServices } from '../services';
import { useTRPC } from '../trpc';

/**
 * An injected fault slows every client of the server, not just this page: while one is set, it says so
 * across the top of every tab (the server panel's line at its foot was easy to miss, or hidden).
 */
export function FaultsBanner() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { labFaults } = useServices();
  const held = useSyncExternalStore(labFaults.subscribe, labFaults.getHeld);
  const pinned = useSyncExternalStore(labFaults.subscribe, labFaults.getPinned);
  const faults = useQuery(trpc.lab.faults.queryOptions(undefined, { refetchInterval: 5000 }));
  const clear = useMutation(trpc.lab.clearFaults.mutationOptions({ onSettled: () => queryClient.invalidateQueries({ queryKey: trpc.lab.faults.queryKey() }) }));
  const entries = Object.entries(faults.data ?? {});
  if (entries.length === 0) return null;
  const whose = held === null ? 'Not set by a run on this page.' : pinned ? 'Kept after the run (“keep fault after the run” is ticked).' : 'Set by the lab’s run: cleared when the run ends or this page closes.';
  return (
    <div className="fault-banner" role="status" data-testid="fault-banner">
      <strong>Server-wide fault{entries.length > 1 ? 's' : ''} injected:</strong>
      {entries.map(([procedure, f]) => (
        <code key={procedure}>
          {procedure} +{f.latencyMs} ms, {Math.round(f.errorRate * 1000) / 10}% errors
        </code>
      ))}
      <span>every client’s calls to {entries.length > 1 ? 'these procedures' : 'it'} are slowed or fail until cleared.</span>
      <span className="fault-whose">{whose}</span>
      <button type="button" className="btn" disabled={clear.isPending} onClick={() => { clear.mutate(); }}>
        Clear faults
      </button>
    </div>
  );
}
