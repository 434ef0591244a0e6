import { useMutation, useQueryClient } from '@tanstack/react-query';
import { memo, useId, useState, useSyncExternalStore } from 'react';
import { CALL_STATES, type CallState } from './call-state';
import type { CallsSnapshot } from './calls-store';
import { fmtMs } from './hops';
import { DEFAULT_FORM, MAX_CONCURRENCY, parseLabForm, type LabErrors, type LabForm } from './config';
import { startRun } from './runner';
import { transportAdvice, transportChoices, transportLabel, usableTransport, type LabTransport } from './transport';
import { useServices } from '../services';
import { useTRPC } from '../trpc';
import { CallTable } from './CallTable';
import { Inspector } from './Inspector';

const STATE_NAMES: Record<CallState, string> = {
  queued: 'queued',
  running: 'running',
  retrying: 'retrying',
  succeeded: 'succeeded',
  failed: 'failed',
  'timed-out': 'timed out',
  cancelled: 'cancelled',
};

/** The lab: its settings re-render only when what they show changes; the rest follows the calls, a frame at a time. */
export function FetchLab({ visible }: { visible: boolean }) {
  const { calls } = useServices();
  // While another tab shows, the lab keeps its state but does not render every frame.
  const snap = useSyncExternalStore(visible ? calls.subscribe : noSubscribe, calls.getSnapshot);
  return (
    <div className="lab">
      <LabControls />
      <RunSummary snap={snap} />
      <CallTable snap={snap} />
      <Inspector snap={snap} />
    </div>
  );
}

const noSubscribe = (): (() => void) => () => undefined;

const LabControls = memo(function LabControls() {
  const services = useServices();
  const { calls, api, labFaults, page, labClients } = services;
  const pinned = useSyncExternalStore(labFaults.subscribe, labFaults.getPinned);
  const running = useSyncExternalStore(calls.subscribe, () => {
    const run = calls.getSnapshot().run;
    return run !== null && run.endedAt === undefined;
  });
  const selectedActive = useSyncExternalStore(calls.subscribe, () => calls.getSnapshot().selectedActive);
  const [form, setForm] = useState<LabForm>(() => ({ ...DEFAULT_FORM, transport: usableTransport(DEFAULT_FORM.transport, page) }));
  const choices = transportChoices(page);
  const [errors, setErrors] = useState<LabErrors>({});
  const [launchError, setLaunchError] = useState<string | null>(null);
  const [launching, setLaunching] = useState(false);
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const clearFaults = useMutation(trpc.lab.clearFaults.mutationOptions({ onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.lab.faults.queryKey() }) }));

  const parsed = parseLabForm(form, page);
  const advice = parsed.ok ? transportAdvice(parsed.config.transport, parsed.config.concurrency) : null;

  const set = <K extends keyof LabForm>(key: K, value: LabForm[K]): void => {
    setForm((f) => ({ ...f, [key]: value }));
    setErrors((e) => ({ ...e, [key]: undefined }));
  };

  function chooseTransport(transport: LabTransport): void {
    set('transport', transport);
    // Not running (the choice is locked during a run): the other transports' sockets are not needed now.
    labClients.closeOthers(transport);
  }

  async function launch(): Promise<void> {
    setLaunchError(null);
    const result = parseLabForm(form, page);
    if (!result.ok) {
      setErrors(result.errors);
      return;
    }
    const { config } = result;
    setLaunching(true);
    try {
      const page = await api.users.list.query({ limit: 100, offset: 0 });
      const ids = page.items.map((u) => u.id);
      if (ids.length === 0) {
        setLaunchError('There are no users to fetch yet: add some in the Users tab (or “Add 50 demo users” there).');
        return;
      }
      // The fault is the server's (every client's calls slow down), so it lasts only as long as the run
      // (services.labFaults clears it after), unless pinned.
      await labFaults.apply('users.byId', { latencyMs: config.latencyMs, errorRate: config.errorRate });
      void queryClient.invalidateQueries({ queryKey: trpc.lab.faults.queryKey() });
      // The lab's calls ride the chosen transport's client; a socket another transport left open is closed.
      labClients.closeOthers(config.transport);
      const run = startRun(calls, config, ids, services.labFetch(config.transport));
      services.run.current = run;
      void run.done
        .then(() => labFaults.release())
        .catch(() => false) // the server is away: the banner still shows the fault, and "Clear" is at hand
        .finally(() => queryClient.invalidateQueries({ queryKey: trpc.lab.faults.queryKey() }));
    } catch (error) {
      setLaunchError(`Could not start: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      setLaunching(false);
    }
  }

  return (
    <form
        className="controls"
        aria-label="Fetch lab settings"
        onSubmit={(e) => {
          e.preventDefault();
          if (!running && !launching) void launch();
        }}
      >
        <div className="controls-grid">
          <NumberField label="Calls" hint="1–10,000 users.byId" value={form.count} error={errors.count} onChange={(v) => { set('count', v); }} testId="count" />
          <NumberField label="Concurrency" hint={`1–${MAX_CONCURRENCY.toLocaleString('en-US')} at a time`} value={form.concurrency} error={errors.concurrency} onChange={(v) => { set('concurrency', v); }} testId="concurrency" />
          <NumberField label="Timeout" unit="ms" hint="per call, retries included" value={form.timeoutMs} error={errors.timeoutMs} onChange={(v) => { set('timeoutMs', v); }} testId="timeout" />
          <NumberField label="Retries" hint="retryable errors only" value={form.retries} error={errors.retries} onChange={(v) => { set('retries', v); }} testId="retries" />
          <NumberField label="Backoff min" unit="ms" hint="full jitter" value={form.minDelayMs} error={errors.minDelayMs} onChange={(v) => { set('minDelayMs', v); }} testId="min-delay" />
          <NumberField label="Backoff max" unit="ms" hint="cap" value={form.maxDelayMs} error={errors.maxDelayMs} onChange={(v) => { set('maxDelayMs', v); }} testId="max-delay" />
          <NumberField label="Latency" unit="ms" hint="pg_sleep, cancellable" value={form.latencyMs} error={errors.latencyMs} onChange={(v) => { set('latencyMs', v); }} testId="latency" />
          <NumberField label="Error rate" unit="%" hint="retryable 503s" value={form.errorRatePct} error={errors.errorRatePct} onChange={(v) => { set('errorRatePct', v); }} testId="error-rate" />
        </div>
        <div className="controls-row">
          <fieldset className="mode transport" data-testid="transport" aria-describedby="lab-advice">
            <legend>Transport</legend>
            {choices.map((c) => (
              <label key={c.value} title={c.unavailable ?? c.title} className={c.unavailable ? 'choice-off' : undefined}>
                <input
                  type="radio"
                  name="transport"
                  value={c.value}
                  checked={form.transport === c.value}
                  disabled={c.unavailable !== null || running}
                  onChange={() => { chooseTransport(c.value); }}
                  data-testid={`transport-${c.value}`}
                />{' '}
                {c.label}
                {c.unavailableShort && <span className="choice-why"> ({c.unavailableShort})</span>}
              </label>
            ))}
          </fieldset>
          <fieldset className="mode">
            <legend>Mode</legend>
            <label title="Every call runs to its end; the run reports each outcome (asyncio.gather(return_exceptions=True))">
              <input type="radio" name="mode" value="settled" checked={form.mode === 'settled'} onChange={() => { set('mode', 'settled'); }} /> settled
            </label>
            <label title="TaskGroup: the first failure cancels every sibling">
              <input type="radio" name="mode" value="fail-fast" checked={form.mode === 'fail-fast'} onChange={() => { set('mode', 'fail-fast'); }} /> fail-fast group
            </label>
          </fieldset>
        </div>
        <div className="controls-row">
          <label className="check" title="Faults are server-wide: every client's users.byId calls slow down while one is set. The lab clears its fault when the run ends or this page closes, unless this is ticked.">
            <input
              type="checkbox"
              checked={pinned}
              onChange={(e) => {
                labFaults.setPinned(e.target.checked);
                // Unpinned with no run going: nothing else will clear it.
                if (!e.target.checked && !running) {
                  void labFaults
                    .release()
                    .catch(() => false)
                    .finally(() => queryClient.invalidateQueries({ queryKey: trpc.lab.faults.queryKey() }));
                }
              }}
              data-testid="pin-faults"
            />{' '}
            keep fault after the run
          </label>
          {/* The actions wrap together, so Launch never ends up alone on a line. */}
          <div className="controls-actions">
          <button type="button" className="btn btn-ghost" onClick={() => { clearFaults.mutate(); }} title="Remove every injected fault on the server">
            Clear server faults
          </button>
          <button
            type="button"
            className="btn"
            disabled={selectedActive === 0}
            onClick={() => { services.run.current?.cancelMany(calls.selectedActiveIndices()); }}
            data-testid="cancel-selected"
          >
            Cancel selected{selectedActive > 0 ? ` (${selectedActive})` : ''}
          </button>
          <button type="button" className="btn btn-danger" disabled={!running} onClick={() => { services.run.current?.cancelAll(); }} data-testid="cancel-all">
            Cancel all
          </button>
          <button type="submit" className="btn btn-primary" disabled={running || launching} data-testid="launch">
            {launching ? 'Starting…' : running ? 'Running…' : 'Launch'}
          </button>
          </div>
        </div>
        <p className={`advice ${launchError || errors.transport || advice?.tone === 'warn' ? 'advice-warn' : ''}`} id="lab-advice" data-testid="advice">
          {launchError ?? errors.transport ?? advice?.text ?? 'Fix the highlighted settings to launch.'}
        </p>
    </form>
  );
});

function RunSummary({ snap }: { snap: CallsSnapshot }) {
  const { calls } = useServices();
  const run = snap.run;
  const elapsed = run ? (run.endedAt ?? snap.now) - run.startedAt : 0;
  const settled = snap.counts.succeeded + snap.counts.failed + snap.counts['timed-out'] + snap.counts.cancelled;
  const cause = run?.cause;
  const siblingsCancelled = cause ? snap.siblingsCancelled : 0;
  return (
    <>
      <div className="summary" aria-label="Run summary">
        <ul className="legend" aria-label="Call states (legend)">
          {CALL_STATES.map((s) => (
            <li key={s} className={`legend-item st-${s}`} data-testid={`count-${s}`}>
              <span className="swatch" aria-hidden="true" />
              <span className="legend-name">{STATE_NAMES[s]}</span>
              <span className="legend-count">{snap.counts[s].toLocaleString('en-US')}</span>
            </li>
          ))}
        </ul>
        <div className="run-meta" data-started-at={run?.startedAt}>
          {run ? (
            <>
              <span>{run.config.mode === 'fail-fast' ? 'fail-fast group' : 'settled'} · <span data-testid="run-transport">{transportLabel(run.config.transport)}</span></span>
              <ServerCounts snap={snap} />
              <span>{settled.toLocaleString('en-US')}/{snap.rows.length.toLocaleString('en-US')} done</span>
              <span className="num">{fmtMs(elapsed)}</span>
            </>
          ) : (
            <span className="muted">No run yet</span>
          )}
        </div>
      </div>
      <div className={`cause ${cause ? 'cause-on' : ''}`} role="status" aria-live="polite" data-testid="cause">
        {cause ? (
          <>
            <strong>Fail-fast:</strong>&nbsp;call&nbsp;
            <button type="button" className="link" onClick={() => { calls.inspect(cause.index); }} data-testid="cause-link">
              #{cause.index + 1}
            </button>
            &nbsp;failed with&nbsp;<code>{cause.error.code}</code>&nbsp;and cancelled {siblingsCancelled.toLocaleString('en-US')} sibling{siblingsCancelled === 1 ? '' : 's'}.
            <span className="muted cause-msg">&nbsp;{cause.error.message}</span>
          </>
        ) : snap.missedEvents > 0 ? (
          <span className="muted">The server’s event ring overflowed: {snap.missedEvents.toLocaleString('en-US')} server events were not seen; some rows lack hops.</span>
        ) : null}
      </div>
    </>
  );
}

/** Where the run's calls are on the server: received at all, running SQL, waiting for a pool connection. */
function ServerCounts({ snap }: { snap: CallsSnapshot }) {
  const { server } = snap;
  const received = snap.rows.length - server.unseen;
  const start = snap.run?.startedAt;
  const after = (at: number | undefined): string | undefined => (at !== undefined && start !== undefined ? String(Math.max(0, at - start)) : undefined);
  const first = after(snap.firstReceivedAt);
  const hundredth = after(snap.hundredthReceivedAt);
  const timing = [first !== undefined ? `the first ${first} ms after the run started` : null, hundredth !== undefined ? `the 100th ${hundredth} ms after` : null].filter(Boolean).join(', ');
  return (
    <span
      className="server-counts"
      title={`From the server's activity stream: calls it received${timing ? ` (${timing})` : ''}, calls whose SQL statement runs, calls that wait for one of its pool connections`}
      data-first-received-ms={first}
      data-hundredth-received-ms={hundredth}
    >
      server: <strong className="num" data-testid="server-received">{received.toLocaleString('en-US')}</strong> received
      {' · '}<strong className="num" data-testid="server-sql">{server.sql.toLocaleString('en-US')}</strong> in SQL
      {' · '}<strong className="num" data-testid="server-pool">{server.pool.toLocaleString('en-US')}</strong> wait for a connection
    </span>
  );
}

function NumberField(props: { label: string; hint: string; unit?: string; value: string; error: string | undefined; onChange: (v: string) => void; testId: string }) {
  const id = useId();
  return (
    <div className={`field ${props.error ? 'field-invalid' : ''}`}>
      <label htmlFor={id}>
        {props.label}
        {props.unit && <span className="unit"> ({props.unit})</span>}
      </label>
      <input
        id={id}
        inputMode="decimal"
        value={props.value}
        onChange={(e) => { props.onChange(e.target.value); }}
        aria-invalid={props.error !== undefined}
        aria-describedby={`${id}-hint`}
        data-testid={`lab-${props.testId}`}
      />
      <span id={`${id}-hint`} className={props.error ? 'field-error' : 'hint'}>{props.error ?? props.hint}</span>
    </div>
  );
}
