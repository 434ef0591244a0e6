import { useSyncExternalStore } from 'react';
import type { ClusterInfo } from '../server/use-server-stats';
import { useServices } from '../services';
import { CallTable } from './CallTable';
import { Inspector } from './Inspector';
import { LabControls } from './LabControls';
import { RunSummary } from './RunSummary';

/** The lab: its settings re-render only when what they show changes; the rest follows the calls, a frame at a time. */
export function FetchLab({ visible, cluster }: { visible: boolean; cluster: ClusterInfo }) {
  const { calls } = useServices();
  // While another tab shows, the lab keeps its state but does not render every frame.
  const snap = useSyncExternalStore(visible ? calls.subscribe : noSubscribe, calls.getSnapshot);
  return (
    <div className="lab">
      <LabControls />
      <RunSummary snap={snap} />
      <CallTable snap={snap} cluster={cluster} />
      <Inspector snap={snap} gone={cluster.gone} />
    </div>
  );
}

const noSubscribe = (): (() => void) => () => undefined;
