import type { StatsSample } from '@asyncscope/api';
import { useQuery } from '@tanstack/react-query';
import { useState, useSyncExternalStore } from 'react';
import { fmtMs, shortCode } from '../lab/hops';
import { fmtLatency, linePath, maxOver, niceCeil } from './chart';
import { useServices } from '../services';
import { useTRPC } from '../trpc';
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

interface Series {
  label: string;
  colour: string;
  value: (s: StatsSample) => number;
  dashed?: boolean;
}

export function ServerPanel({ stats, hidden }: { stats: ServerStatsView; hidden: boolean }) {
  const [spanMs, setSpanMs] = useState(180_000);
  const data = stats.data;
  const trpc = useTRPC();
  const faults = useQuery(trpc.lab.faults.queryOptions(undefined, { refetchInterval: 5000 }));
  const history = data?.history ?? [];
  const end = history.at(-1)?.at ?? Date.now();
  const pool = data?.pool ?? [];
  const poolTotal = pool.reduce((n, p) => n + p.count, 0);
  // How old the breakdown is (the server answers with its last read while the pool is busy).
  const poolAgeMs = (data?.database as { poolConnectionsAgeMs?: number | null } | undefined)?.poolConnectionsAgeMs ?? null;
  const other = pool.filter((p) => !POOL_STATES.some((s) => s.state === p.state));
  const faultEntries = Object.entries(faults.data ?? {});

  return (
    <aside className="server" id="server-panel" aria-label="Server" hidden={hidden}>
      <div className="server-head">
        <h2>Server</h2>
        <span className="muted" data-testid="server-updated" data-updated-at={stats.updatedAt || undefined} data-latency-ms={stats.updatedAt ? stats.latencyMs : undefined} title={stats.updatedAt ? `answered in ${stats.latencyMs} ms` : undefined}>{stats.updatedAt ? `updated ${new Date(stats.updatedAt).toLocaleTimeString('en-GB')}` : 'waiting…'}</span>
      </div>
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
        <span>History</span>
        <div className="seg-buttons" role="group" aria-label="Chart span">
          {SPANS.map((s) => (
            <button key={s.ms} type="button" className={spanMs === s.ms ? 'on' : ''} aria-pressed={spanMs === s.ms} onClick={() => { setSpanMs(s.ms); }}>
              {s.label}
            </button>
          ))}
        </div>
      </div>
      <Chart title="requests / s" samples={history} end={end} spanMs={spanMs} format={(v) => Math.round(v).toLocaleString('en-US')} series={[{ label: 'req/s', colour: 'var(--running)', value: (s) => s.requestsPerSecond }]} />
      <Chart
        title="call latency"
        samples={history}
        end={end}
        spanMs={spanMs}
        format={fmtLatency}
        series={[
          { label: 'p50', colour: 'var(--succeeded)', value: (s) => s.latencyP50Ms },
          { label: 'p95', colour: 'var(--retrying)', value: (s) => s.latencyP95Ms },
          { label: 'p99', colour: 'var(--failed)', value: (s) => s.latencyP99Ms },
        ]}
      />
      <Chart
        title="event-loop delay"
        samples={history}
        end={end}
        spanMs={spanMs}
        format={fmtLatency}
        series={[
          { label: 'p50', colour: 'var(--succeeded)', value: (s) => s.eventLoopDelayP50Ms },
          { label: 'p99', colour: 'var(--failed)', value: (s) => s.eventLoopDelayP99Ms },
        ]}
      />
      <Chart
        title="in flight · queued · shed"
        samples={history}
        end={end}
        spanMs={spanMs}
        format={(v) => Math.round(v).toLocaleString('en-US')}
        series={[
          { label: 'in flight', colour: 'var(--running)', value: (s) => s.inFlight },
          { label: 'queued', colour: 'var(--queued-dark)', value: (s) => s.queued },
          { label: 'shed', colour: 'var(--failed)', value: (s) => s.shed, dashed: true },
        ]}
      />

      <div className="faults" data-testid="faults">
        <span>Injected faults:</span>{' '}
        {faultEntries.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          faultEntries.map(([procedure, f]) => (
            <code key={procedure}>
              {procedure} +{f.latencyMs} ms, {Math.round(f.errorRate * 1000) / 10}% errors
            </code>
          ))
        )}
      </div>
      <OtherCalls />
    </aside>
  );
}

function Gauge(props: { label: string; value: number | undefined; max?: number | undefined; sub?: string | undefined; tone?: 'bad' | undefined; title?: string; testId?: string; format?: (v: number) => string }) {
  const { value, max } = props;
  const pct = value !== undefined && max ? Math.min(100, (value / max) * 100) : null;
  return (
    <div className={`gauge ${props.tone === 'bad' ? 'gauge-bad' : ''}`} title={props.title} data-testid={props.testId ? `gauge-${props.testId}` : undefined}>
      <div className="gauge-label">{props.label}</div>
      <div className="gauge-value num">
        {value === undefined ? '–' : props.format ? props.format(value) : value.toLocaleString('en-US')}
        {max !== undefined && <span className="gauge-max"> / {max.toLocaleString('en-US')}</span>}
      </div>
      {pct !== null ? (
        <div className="gauge-track">
          <span style={{ width: `${pct}%` }} />
        </div>
      ) : (
        <div className="gauge-sub muted">{props.sub ?? '\u00a0'}</div>
      )}
    </div>
  );
}

const CHART_W = 340;
const CHART_H = 44;

function Chart({ title, samples, end, spanMs, series, format }: { title: string; samples: readonly StatsSample[]; end: number; spanMs: number; series: Series[]; format: (v: number) => string }) {
  const start = end - spanMs;
  const yMax = niceCeil(maxOver(samples, series.map((s) => s.value), start), 1);
  const last = samples.at(-1);
  const frame = { width: CHART_W, height: CHART_H, end, spanMs, yMax };
  return (
    <figure className="chart">
      <figcaption>
        <span className="chart-title">{title}</span>
        <span className="chart-now">
          {series.map((s) => (
            <span key={s.label} className="chart-key">
              <span className="swatch" style={{ background: s.colour }} aria-hidden="true" />
              {s.label} <strong className="num">{last ? format(s.value(last)) : '–'}</strong>
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${CHART_W} ${CHART_H}`} width="100%" height={CHART_H} preserveAspectRatio="none" role="img" aria-label={`${title}, last ${spanMs / 60_000} min, max ${format(yMax)}`}>
        <line x1="0" x2={CHART_W} y1={CHART_H - 0.5} y2={CHART_H - 0.5} className="chart-base" />
        <line x1="0" x2={CHART_W} y1={CHART_H / 2} y2={CHART_H / 2} className="chart-grid" />
        {series.map((s) => (
          <path key={s.label} d={linePath(samples, s.value, frame)} stroke={s.colour} strokeDasharray={s.dashed ? '3 2' : undefined} className="chart-line" />
        ))}
      </svg>
      <div className="chart-scale muted">
        <span>−{spanMs / 60_000} min</span>
        <span>max {format(yMax)}</span>
        <span>now</span>
      </div>
    </figure>
  );
}

function OtherCalls() {
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
