/**
 * A grouped bar chart as a standalone SVG string, no dependencies: one panel per measure (req/s, CPU
 * µs/call), a group of bars per scenario, one bar per target (a colour each, named in the legend). A bar
 * may carry a second, lighter segment stacked on it (PostgreSQL's CPU on top of the server's).
 * Sized for a README (860 px wide); every bar has `data-*` attributes with what it shows.
 */

export interface Bar {
  group: string;
  series: string;
  value: number;
  /** A second segment stacked on top of `value` (drawn lighter). */
  stacked?: number;
}

export interface Panel {
  title: string;
  /** The y axis' label, with its unit. */
  axisLabel: string;
  bars: Bar[];
}

export interface ChartInput {
  title: string;
  /** A line under the title (settings, machine). */
  subtitle?: string;
  /** Bar groups, left to right (scenarios). */
  groups: string[];
  /** Bars within a group, in order, and the legend (targets). */
  series: string[];
  panels: Panel[];
  /** Legend text for the stacked segments, when any bar has one. */
  stackedLabel?: string;
}

const WIDTH = 860;
const PANEL_HEIGHT = 280;
const MARGIN = { left: 78, right: 16, top: 34, bottom: 46 };
const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];
const FONT = 'font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

/** A round number ≥ max whose fifths are round too, so the axis ends on a tick and no bar gets too short. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 8, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

const num = (n: number) => Math.round(n).toLocaleString('en-US');
const px = (n: number) => (Math.round(n * 10) / 10).toString();

function panelSvg(input: ChartInput, panel: Panel, top: number): string[] {
  const out: string[] = [];
  const plotLeft = MARGIN.left;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotTop = top + MARGIN.top;
  const plotHeight = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const baseY = plotTop + plotHeight;
  // Some headroom, so the tallest bar's label stays clear of the panel's title.
  const max = niceMax(1.06 * Math.max(0, ...panel.bars.map((b) => b.value + (b.stacked ?? 0))));
  const scale = plotHeight / max;

  out.push(`<text x="${px(plotLeft)}" y="${px(top + 20)}" font-size="14" font-weight="600" ${FONT}>${escapeXml(panel.title)}</text>`);
  // Gridlines and tick labels: five steps.
  for (let i = 0; i <= 5; i++) {
    const value = (max * i) / 5;
    const y = baseY - value * scale;
    out.push(`<line x1="${px(plotLeft)}" y1="${px(y)}" x2="${px(plotLeft + plotWidth)}" y2="${px(y)}" stroke="${i === 0 ? '#555' : '#ddd'}" stroke-width="1"/>`);
    out.push(`<text x="${px(plotLeft - 6)}" y="${px(y + 4)}" font-size="11" text-anchor="end" fill="#444" ${FONT}>${escapeXml(num(value))}</text>`);
  }
  const axisX = 18;
  const axisY = plotTop + plotHeight / 2;
  out.push(`<text x="${axisX}" y="${px(axisY)}" font-size="12" text-anchor="middle" fill="#333" transform="rotate(-90 ${axisX} ${px(axisY)})" ${FONT}>${escapeXml(panel.axisLabel)}</text>`);

  const groupWidth = plotWidth / Math.max(1, input.groups.length);
  const barWidth = (groupWidth * 0.84) / Math.max(1, input.series.length);
  input.groups.forEach((group, g) => {
    const groupLeft = plotLeft + g * groupWidth + groupWidth * 0.08;
    out.push(`<text x="${px(plotLeft + (g + 0.5) * groupWidth)}" y="${px(baseY + 18)}" font-size="12" text-anchor="middle" fill="#222" ${FONT}>${escapeXml(group)}</text>`);
    input.series.forEach((series, s) => {
      const bar = panel.bars.find((b) => b.group === group && b.series === series);
      if (!bar) return;
      const color = COLORS[s % COLORS.length] ?? '#888';
      const x = groupLeft + s * barWidth + 1;
      const w = Math.max(1, barWidth - 2);
      const h = bar.value * scale;
      const data = `data-panel="${escapeXml(panel.title)}" data-group="${escapeXml(group)}" data-series="${escapeXml(series)}"`;
      out.push(`<rect x="${px(x)}" y="${px(baseY - h)}" width="${px(w)}" height="${px(h)}" fill="${color}" ${data} data-value="${bar.value}"><title>${escapeXml(`${series}, ${group}: ${num(bar.value)}`)}</title></rect>`);
      let label = num(bar.value);
      let labelTop = baseY - h;
      if (bar.stacked !== undefined) {
        const hs = bar.stacked * scale;
        out.push(`<rect x="${px(x)}" y="${px(baseY - h - hs)}" width="${px(w)}" height="${px(hs)}" fill="${color}" fill-opacity="0.4" ${data} data-stacked="${bar.stacked}"><title>${escapeXml(`${series}, ${group}: + ${num(bar.stacked)} (${input.stackedLabel ?? 'stacked'})`)}</title></rect>`);
        label = `${num(bar.value)}+${num(bar.stacked)}`;
        labelTop -= hs;
      }
      out.push(`<text x="${px(x + w / 2)}" y="${px(labelTop - 4)}" font-size="10" text-anchor="middle" fill="#222" ${FONT}>${escapeXml(label)}</text>`);
    });
  });
  return out;
}

export function barChartSvg(input: ChartInput): string {
  const legendTop = input.subtitle ? 48 : 32;
  // The legend wraps: estimate each entry's width from its text (about 6.5 px a character at 12 px).
  const entries = input.series.map((name, s) => ({ name, color: COLORS[s % COLORS.length] ?? '#888', opacity: 1 }));
  if (input.stackedLabel && input.panels.some((p) => p.bars.some((b) => b.stacked !== undefined))) {
    entries.push({ name: input.stackedLabel, color: '#888', opacity: 0.4 });
  }
  const legend: string[] = [];
  let x = MARGIN.left;
  let row = 0;
  for (const entry of entries) {
    const width = 22 + entry.name.length * 6.5 + 18;
    if (x + width > WIDTH - MARGIN.right && x > MARGIN.left) {
      row++;
      x = MARGIN.left;
    }
    const y = legendTop + row * 20;
    legend.push(`<rect x="${px(x)}" y="${px(y)}" width="14" height="14" fill="${entry.color}" fill-opacity="${entry.opacity}"/>`);
    legend.push(`<text x="${px(x + 20)}" y="${px(y + 11.5)}" font-size="12" fill="#222" ${FONT}>${escapeXml(entry.name)}</text>`);
    x += width;
  }
  const panelsTop = legendTop + (row + 1) * 20 + 6;
  const height = panelsTop + input.panels.length * PANEL_HEIGHT;
  const body = [
    `<rect x="0" y="0" width="${WIDTH}" height="${px(height)}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="16" font-weight="700" fill="#111" ${FONT}>${escapeXml(input.title)}</text>`,
    ...(input.subtitle ? [`<text x="${MARGIN.left}" y="40" font-size="11" fill="#555" ${FONT}>${escapeXml(input.subtitle)}</text>`] : []),
    ...legend,
    ...input.panels.flatMap((panel, i) => panelSvg(input, panel, panelsTop + i * PANEL_HEIGHT)),
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${px(height)}" viewBox="0 0 ${WIDTH} ${px(height)}" role="img" aria-label="${escapeXml(input.title)}">`,
    ...body.map((line) => `  ${line}`),
    '</svg>',
    '',
  ].join('\n');
}
