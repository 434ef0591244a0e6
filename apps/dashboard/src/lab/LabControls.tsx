import { TimeoutError, withTimeout } from '@asyncscope/concurrency';
import { memo, useState, useSyncExternalStore } from 'react';
import { useLifetimeSignal } from '../lib/lifetime';
import { useServices } from '../services';
import { Field } from '../ui/Field';
import { useClearFaults, useRefreshFaults, useRunUserIds } from './api';
import { DEFAULT_FORM, MAX_CONCURRENCY, parseLabForm, type LabErrors, type LabForm } from './config';
import { startRun } from './runner';
import { transportAdvice, transportChoices, usableTransport, type LabTransport } from './transport';

/** How long a launch waits for the server (the run's ids and its fault) before it gives up and says so. */
export const LAUNCH_TIMEOUT_MS = 10_000;

/** The lab's settings and actions: they re-render only when what they show changes, not every frame. */
export const LabControls = memo(function LabControls() {
  const services = useServices();
  const { calls, labFaults, page, labClients } = services;
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
  const clearFaults = useClearFaults();
  const refreshFaults = useRefreshFaults();
  const runUserIds = useRunUserIds();
  const lifetime = useLifetimeSignal();

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
    const unmounted = lifetime();
    setLaunching(true);
    try {
      // Before the run: the ids, and the fault set on the server. While the page's socket reconnects these
      // would wait for it: bounded, so that the button comes back with a reason.
      const ids = await withTimeout(async (signal) => {
        const found = await runUserIds(signal);
        // The fault is the server's (every client's calls slow down), so it lasts only as long as the run
        // (services.labFaults clears it after), unless pinned.
        if (found.length > 0) await labFaults.apply('users.byId', { latencyMs: config.latencyMs, errorRate: config.errorRate }, signal);
        return found;
      }, LAUNCH_TIMEOUT_MS, { signal: unmounted });
      if (ids.length === 0) {
        setLaunchError('There are no users to fetch yet: add some in the Users tab (or “Add 50 demo users” there).');
        return;
      }
      void refreshFaults();
      // The lab's calls ride the chosen transport's client; a socket another transport left open is closed.
      labClients.closeOthers(config.transport);
      const run = startRun(calls, config, ids, services.labFetch(config.transport));
      services.run.current = run;
      void run.done
        .then(() => labFaults.release())
        .catch(() => false) // the server is away: the banner still shows the fault, and "Clear" is at hand
        .finally(refreshFaults);
    } catch (error) {
      // No run will release the fault this launch may have set: release it now (once the server answers).
      void labFaults.release().catch(() => false).finally(refreshFaults);
      if (unmounted.aborted) return; // the lab went away: nobody is left to tell
      setLaunchError(`Could not start: ${error instanceof TimeoutError ? `the server did not answer within ${LAUNCH_TIMEOUT_MS / 1000} s.` : error instanceof Error ? error.message : String(error)}`);
    } finally {
      if (!unmounted.aborted) setLaunching(false);
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
          <Field inputMode="decimal" label="Calls" hint="1–10,000 users.byId" value={form.count} error={errors.count} onChange={(v) => { set('count', v); }} testId="lab-count" />
          <Field inputMode="decimal" label="Concurrency" hint={`1–${MAX_CONCURRENCY.toLocaleString('en-US')} at a time`} value={form.concurrency} error={errors.concurrency} onChange={(v) => { set('concurrency', v); }} testId="lab-concurrency" />
          <Field inputMode="decimal" label="Timeout" unit="ms" hint="per call, retries included" value={form.timeoutMs} error={errors.timeoutMs} onChange={(v) => { set('timeoutMs', v); }} testId="lab-timeout" />
          <Field inputMode="decimal" label="Retries" hint="retryable errors only" value={form.retries} error={errors.retries} onChange={(v) => { set('retries', v); }} testId="lab-retries" />
          <Field inputMode="decimal" label="Backoff min" unit="ms" hint="full jitter" value={form.minDelayMs} error={errors.minDelayMs} onChange={(v) => { set('minDelayMs', v); }} testId="lab-min-delay" />
          <Field inputMode="decimal" label="Backoff max" unit="ms" hint="cap" value={form.maxDelayMs} error={errors.maxDelayMs} onChange={(v) => { set('maxDelayMs', v); }} testId="lab-max-delay" />
          <Field inputMode="decimal" label="Latency" unit="ms" hint="pg_sleep, cancellable" value={form.latencyMs} error={errors.latencyMs} onChange={(v) => { set('latencyMs', v); }} testId="lab-latency" />
          <Field inputMode="decimal" label="Error rate" unit="%" hint="retryable 503s" value={form.errorRatePct} error={errors.errorRatePct} onChange={(v) => { set('errorRatePct', v); }} testId="lab-error-rate" />
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
                    .finally(refreshFaults);
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
