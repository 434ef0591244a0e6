import { fmtLatency } from './chart';
import { eventsView, instanceLabel, instanceStateText, instanceTotals, type EventsStatus, type InstanceStats } from './cluster';

const n = (v: number): string => v.toLocaleString('en-US');

/**
 * Every instance behind the balancer, this one first: what each admits and holds now, and the totals of the
 * ones that are up. Admission limits are per instance, so the capacity totals are sums. A gone instance
 * (no report for 3 s) stays listed, greyed, until the cluster forgets it.
 */
export function InstancesTable({ instances, self }: { instances: readonly InstanceStats[]; self: string }) {
  const t = instanceTotals(instances);
  return (
    <table className="instances" data-testid="instances" aria-label="Instances">
      <thead>
        <tr>
          <th scope="col">instance</th>
          <th scope="col">state</th>
          <th scope="col" className="num" title="Calls admitted and running now">in fl.</th>
          <th scope="col" className="num" title="Calls waiting for admission">queue</th>
          <th scope="col" className="num" title="Calls refused with TOO_MANY_REQUESTS since the instance started">shed</th>
          <th scope="col" className="num" title="SQL statements running now, of the pool's connections">pool</th>
          <th scope="col" className="num" title="Event-loop delay, p99 of the last second">loop</th>
        </tr>
      </thead>
      <tbody>
        {instances.map((i) => {
          const gone = i.state === 'gone';
          return (
            <tr key={i.instance} className={gone ? 'instance-gone' : undefined} data-testid="instance" data-instance={i.instance} data-state={i.state}>
              <td className="mono" title={`${i.instance}${i.instance === self ? ' (the instance this page talks to)' : ''}`}>
                {instanceLabel(i.instance)}
                {i.instance === self && <span className="instance-self" aria-label="this instance"> ●</span>}
              </td>
              <td title={gone ? `No report from ${i.instance} for ${Math.round(i.ageMs / 1000)} s: stopped or unreachable; its last figures are greyed` : `Last report ${i.ageMs} ms ago`}>
                <span className={gone ? 'instance-state-gone' : 'instance-state-up'}>{instanceStateText(i)}</span>
              </td>
              <td className="num" title={`${n(i.inFlight)} of ${n(i.maxInFlight)}`}>{n(i.inFlight)}</td>
              <td className="num" title={`${n(i.queued)} of ${n(i.maxQueue)}`}>{n(i.queued)}</td>
              <td className={`num ${i.shed > 0 && !gone ? 'instance-bad' : ''}`}>{n(i.shed)}</td>
              <td className="num">{n(i.poolBusy)}/{n(i.poolMax)}</td>
              <td className="num">{fmtLatency(i.eventLoopDelayMs)}</td>
            </tr>
          );
        })}
      </tbody>
      <tfoot>
        <tr data-testid="instances-total" title="Sums over the instances that are up (the event loop: the slowest one)">
          <th scope="row">total</th>
          <td>{t.up} up</td>
          <td className="num" title={`${n(t.inFlight)} of ${n(t.maxInFlight)}`}>{n(t.inFlight)}</td>
          <td className="num" title={`${n(t.queued)} of ${n(t.maxQueue)}`}>{n(t.queued)}</td>
          <td className={`num ${t.shed > 0 ? 'instance-bad' : ''}`}>{n(t.shed)}</td>
          <td className="num">{n(t.poolBusy)}/{n(t.poolMax)}</td>
          <td className="num">{fmtLatency(t.eventLoopDelayMs)}</td>
        </tr>
      </tfoot>
    </table>
  );
}

/** The events link through the broker: a quiet line while it works, a warning while it does not. */
export function EventsLine({ events }: { events: EventsStatus }) {
  const view = eventsView(events);
  if (!view) return null;
  return (
    <p className={`events-line events-${view.tone}`} data-testid="events-status" data-connected={String(events.connected)} title={view.detail} role={view.tone === 'warn' ? 'status' : undefined}>
      {view.text}
    </p>
  );
}
