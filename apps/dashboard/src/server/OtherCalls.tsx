import { useSyncExternalStore } from 'react';
import { fmtMs, shortCode } from '../lab/hops';
import { useServices } from '../services';

/** Server calls that are not rows of the lab's run (batched, other tabs, other programs). */
export function OtherCalls() {
  const { calls } = useServices();
  const others = useSyncExternalStore(calls.subscribe, () => calls.getSnapshot().others);
  const list = others.slice(0, 8);
  return (
    <div className="others">
      <div className="others-head" title="Server calls that are not rows of the current run: batched calls (their request id is chosen by the server), other tabs, other programs">
        Other server calls <span className="muted">(batched, other clients)</span>
      </div>
      {list.length === 0 ? (
        <p className="muted small">None seen.</p>
      ) : (
        <table className="others-table">
          <tbody>
            {list.map((o) => (
              <tr key={o.callId}>
                <td className="mono" title={o.callId}>{o.callId.length > 14 ? `${o.callId.slice(0, 8)}…${o.callId.slice(-4)}` : o.callId}</td>
                <td>{o.path}</td>
                <td className={o.code === 'OK' ? 'ok' : o.code ? 'bad' : 'busy'}>{o.code ? shortCode(o.code) : o.last}</td>
                <td className="num">{o.ms !== undefined ? fmtMs(o.ms) : o.pid !== undefined ? `pid ${o.pid}` : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
