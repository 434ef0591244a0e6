import { useState } from 'react';
import { useServerFaults } from '../lab/api';
import { FaultCode } from '../lab/FaultsBanner';
import { fmtLatency } from './chart';
import { Gauge } from './Gauge';
import { HistoryChart, type Series } from './HistoryChart';
import { instanceLabel } from './cluster';
import { EventsLine, InstancesTable } from './Instances';
import { OtherCalls } from './OtherCalls';
import type { ServerStatsView } from './use-server-stats';

const POOL_STATES: { state: string; label: string; colour: string }[] = [
  { state: 'active', label: 'active', colour: 'var(--running)' },
  { state: 'idle in transaction', label: 'idle in tx', colour: 'var(--retrying)' },
  { state: 'idle', label: 'idle', colour: 'var(--succeeded)' },
];

const SPANS = [
  { ms: 60_000, label: '1 min' },
  { ms: 180_000, label: '3 min' },
  { ms: 300_000, label: '5 min' },
];

const count = (v: number): string => Math.round(v).toLocaleString('en-US');

const CHARTS: { title: string; format: (v: number) => string; series: Series[] }[] = [
  { title: 'requests / s', format: count, series: [{ label: 'req/s', colour: 'var(--running)', value: (s) => s.requestsPerSecond }] },
  {
    title: 'call latency',
    format: fmtLatency,
    series: [
      { label: 'p50', colour: 'var(--succeeded)', value: (s) => s.latencyP50Ms },
      { label: 'p95', colour: 'var(--retrying)', value: (s) => s.latencyP95Ms },
      { label: 'p99', colour: 'var(--failed)', value: (s) => s.latencyP99Ms },
    ],
  },
  {
    title: 'event-loop delay',
    format: fmtLatency,
    series: [
      { label: 'p50', colour: 'var(--succeeded)', value: (s) => s.eventLoopDelayP50Ms },
      { label: 'p99', colour: 'var(--failed)', value: (s) => s.eventLoopDelayP99Ms },
    ],
  },
  {
    title: 'in flight · queued · shed',
    format: count,
    series: [
      { label: 'in flight', colour: 'var(--running)', value: (s) => s.inFlight },
      { label: 'queued', colour: 'var(--queued-dark)', value: (s) => s.queued },
      { label: 'shed', colour: 'var(--failed)', value: (s) => s.shed, dashed: true },
    ],
  },
];

export function ServerPanel({ stats, hidden }: { stats: ServerStatsView; hidden: boolean }) {
  const [spanMs, setSpanMs] = useState(180_000);
  const data = stats.data;
  const faults = useServerFaults();
  const history = data?.history ?? [];
  const end = history.at(-1)?.at ?? Date.now();
  const pool = data?.pool ?? [];
  const poolTotal = pool.reduce((n, p) => n + p.count, 0);
  // How old the breakdown is (the server answers with its last read while the pool is busy).
  const poolAgeMs = data?.database.poolConnectionsAgeMs ?? null;
  const other = pool.filter((p) => !POOL_STATES.some((s) => s.state === p.state));
  const faultEntries = Object.entries(faults.data ?? {});
  // Behind a balancer: every instance and their totals; the gauges and charts below are this instance's.
  const instances = data?.instances ?? [];
  const cluster = instances.length > 1;
  const goneCount = instances.filter((i) => i.state === 'gone').length;

  return (
    <aside className="server" id="server-panel" aria-label="Server" hidden={hidden}>
      <div className="server-head">
        <h2>
          Server
          {data && (
            <span className="instance-id mono" data-testid="instance-id" title={`Instance ${data.instance}: the one this page's socket reached`}>
              {instanceLabel(data.instance)}
            </span>
          )}
        </h2>
        <span className="muted" data-testid="server-updated" data-updated-at={stats.updatedAt || undefined} data-latency-ms={stats.updatedAt ? stats.latencyMs : undefined} title={stats.updatedAt ? `answered in ${stats.latencyMs} ms` : undefined}>{stats.updatedAt ? `updated ${new Date(stats.updatedAt).toLocaleTimeString('en-GB')}` : 'waiting…'}</span>
      </div>
      {data && <EventsLine events={data.events} />}
      {cluster && data && (
        <>
          <div className="section-head">
            Instances <span className="muted">({instances.length}{goneCount > 0 && <>, <span className="instance-state-gone">{goneCount} gone</span></>})</span>
          </div>
          <div className="instances-x">
            <InstancesTable instances={instances} self={data.instance} />
          </div>
          <div className="section-head">
            This instance <span className="muted mono" title={data.instance}>{instanceLabel(data.instance)}</span>
          </div>
        </>
      )}
      <div className={`gauges ${stats.offlineSince !== null ? 'stale' : ''}`}>
        <Gauge label="in flight" value={data?.inFlight} max={data?.maxInFlight} testId="inflight" />
        <Gauge label="queued" value={data?.queued} max={data?.maxQueue} testId="queued" />
        <Gauge label="shed (total)" value={data?.shed} tone={data && data.shed > 0 ? 'bad' : undefined} title="Calls refused with TOO_MANY_REQUESTS since the server started" />
        <Gauge label="SQL running" value={data?.statements.running} sub={data ? `${data.statements.queued.toLocaleString('en-US')} waiting` : undefined} title="SQL statements running now, and statements waiting for one of the pool's connections" />
        <Gauge label="CPU workers" value={data?.cpu.threads} sub={data ? `${data.cpu.queued} queued` : undefined} />
        <Gauge label="event loop p99" value={history.at(-1)?.eventLoopDelayP99Ms} format={fmtLatency} />
      </div>

      <div className="pool" data-testid="pool">
        <div className="pool-head">
          <span>Pool connections</span>
          <span className="muted num" data-testid="pool-open" title={poolAgeMs !== null && poolAgeMs >= 1500 ? 'Every pool connection is busy, so the breakdown (read from Postgres through the pool) is the last one read' : undefined}>
            {poolTotal} open of {data?.poolMax ?? '–'} max
            {poolAgeMs !== null && poolAgeMs >= 1500 && ` · as of ${Math.round(poolAgeMs / 1000)} s ago`}
          </span>
        </div>
        <div className="pool-bar" role="img" aria-label={pool.map((p) => `${p.count} ${p.state}`).join(', ') || 'no connections'}>
          {data &&
            [...POOL_STATES, ...other.map((o) => ({ state: o.state, label: o.state, colour: 'var(--muted)' }))].map((s) => {
              const count = pool.find((p) => p.state === s.state)?.count ?? 0;
              if (count === 0) return null;
              return <span key={s.state} style={{ width: `${(count / Math.max(1, data.poolMax)) * 100}%`, background: s.colour }} title={`${count} ${s.state}`} />;
            })}
        </div>
        <ul className="pool-legend">
          {POOL_STATES.map((s) => (
            <li key={s.state} data-testid={`pool-${s.state.replaceAll(' ', '-')}`}>
              <span className="swatch" style={{ background: s.colour }} aria-hidden="true" />
              {s.label} <strong className="num">{pool.find((p) => p.state === s.state)?.count ?? 0}</strong>
            </li>
          ))}
          {other.map((o) => (
            <li key={o.state}>
              <span className="swatch" style={{ background: 'var(--muted)' }} aria-hidden="true" />
              {o.state} <strong className="num">{o.count}</strong>
            </li>
          ))}
        </ul>
      </div>

      <div className="charts-head">
        <span>History{cluster && <span className="muted"> · this instance</span>}</span>
        <div className="seg-buttons" role="group" aria-label="Chart span">
          {SPANS.map((s) => (
            <button key={s.ms} type="button" className={spanMs === s.ms ? 'on' : ''} aria-pressed={spanMs === s.ms} onClick={() => { setSpanMs(s.ms); }}>
              {s.label}
            </button>
          ))}
        </div>
      </div>
      {CHARTS.map((chart) => (
        <HistoryChart key={chart.title} {...chart} samples={history} end={end} spanMs={spanMs} />
      ))}

      <div className="faults" data-testid="faults">
        <span>Injected faults:</span>{' '}
        {faultEntries.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          faultEntries.map(([procedure, f]) => (
            <FaultCode key={procedure} procedure={procedure} fault={f} />
          ))
        )}
      </div>
      <OtherCalls />
    </aside>
  );
}

