import type { StatsSample } from '@asyncscope/api';
import { linePath, maxOver, niceCeil } from './chart';

export interface Series {
  label: string;
  colour: string;
  value: (s: StatsSample) => number;
  dashed?: boolean;
}

const CHART_W = 340;
const CHART_H = 44;

/** A small line chart of the server's history, its last values in the caption. */
export function HistoryChart({ title, samples, end, spanMs, series, format }: { title: string; samples: readonly StatsSample[]; end: number; spanMs: number; series: Series[]; format: (v: number) => string }) {
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
