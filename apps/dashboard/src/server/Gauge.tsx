/** One figure of the server panel's top grid, with a bar when it has a maximum. */
export function Gauge(props: { label: string; value: number | undefined; max?: number | undefined; sub?: string | undefined; tone?: 'bad' | undefined; title?: string; testId?: string; format?: (v: number) => string }) {
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
