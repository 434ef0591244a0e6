import { describe, expect, it } from 'vitest';
import { barChartSvg, niceMax, type ChartInput } from './chart';

/**
 * A strict enough XML well-formedness check for what the chart writes: every tag closes in order,
 * attributes are quoted, and text and attribute values carry no raw `<` or stray `&`.
 */
function checkXml(xml: string): void {
  const open: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let rest = xml.replace(/^<\?xml[^>]*\?>\s*/, '');
  let m: RegExpExecArray | null;
  let at = 0;
  token.lastIndex = 0;
  while (at < rest.length && (m = token.exec(rest)) !== null) {
    at = token.lastIndex;
    const [, closing, name, attrs, selfClosing, text] = m;
    const entities = /&(?!(amp|lt|gt|quot|apos|#\d+);)/;
    if (text !== undefined) {
      if (entities.test(text)) throw new Error(`bad entity in text: ${text}`);
      continue;
    }
    if (attrs && entities.test(attrs)) throw new Error(`bad entity in attributes of <${name ?? ''}>`);
    if (closing) {
      const expected = open.pop();
      if (expected !== name) throw new Error(`</${name ?? ''}> closes <${expected ?? 'nothing'}>`);
    } else if (!selfClosing) {
      open.push(name ?? '');
    }
  }
  rest = rest.slice(at);
  if (rest.trim() !== '') throw new Error(`not XML from: ${rest.slice(0, 80)}`);
  if (open.length > 0) throw new Error(`unclosed: ${open.join(', ')}`);
}

interface Rect { panel: string; group: string; series: string; value?: number; stacked?: number; height: number; y: number }

function bars(svg: string): Rect[] {
  return [...svg.matchAll(/<rect ([^>]*data-series[^>]*)>/g)].map(([, attrs = '']) => {
    const text = (name: string) => new RegExp(`(?:^|\\s)${name}="([^"]*)"`).exec(attrs)?.[1] ?? '';
    const number = (name: string) => (text(name) === '' ? undefined : Number(text(name)));
    return { panel: text('data-panel'), group: text('data-group'), series: text('data-series'), value: number('data-value'), stacked: number('data-stacked'), height: Number(text('height')), y: Number(text('y')) };
  });
}

const input: ChartInput = {
  title: 'users.byId & users.list <through> "the server"',
  subtitle: '100 connections; load 1.2',
  groups: ['users.byId', 'users.list (50 rows)'],
  series: ['node:http + postgres.js as shipped', 'node:http + postgres.js, queue fixed', 'this server'],
  stackedLabel: 'PostgreSQL CPU',
  panels: [
    {
      title: 'Throughput',
      axisLabel: 'req/s',
      bars: [
        { group: 'users.byId', series: 'node:http + postgres.js as shipped', value: 9457 },
        { group: 'users.byId', series: 'node:http + postgres.js, queue fixed', value: 12924 },
        { group: 'users.byId', series: 'this server', value: 2355 },
        { group: 'users.list (50 rows)', series: 'this server', value: 565 },
      ],
    },
    {
      title: 'CPU per call',
      axisLabel: 'µs/call',
      bars: [
        { group: 'users.byId', series: 'node:http + postgres.js, queue fixed', value: 68, stacked: 100 },
        { group: 'users.list (50 rows)', series: 'this server', value: 1249, stacked: 1013 },
      ],
    },
  ],
};

describe('barChartSvg', () => {
  const svg = barChartSvg(input);

  it('writes well-formed XML with the title and labels escaped', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(() => { checkXml(svg); }).not.toThrow();
    expect(svg).toContain('users.byId &amp; users.list &lt;through&gt; &quot;the server&quot;');
    // The checker itself catches what it must.
    expect(() => { checkXml('<svg><g></svg>'); }).toThrow();
    expect(() => { checkXml('<svg><text>a & b</text></svg>'); }).toThrow();
    expect(() => { checkXml('<svg><text x=1>a</text></svg>'); }).toThrow();
  });

  it('names every target in the legend and every group on the axis', () => {
    for (const name of [...input.series, ...input.groups, 'PostgreSQL CPU', 'req/s', 'µs/call']) {
      expect(svg).toContain(`>${name.replace(/&/g, '&amp;')}</text>`);
    }
  });

  it('draws one bar per value, heights proportional to the values within a panel', () => {
    const drawn = bars(svg);
    for (const panel of input.panels) {
      const own = drawn.filter((b) => b.panel === panel.title);
      expect(own.filter((b) => b.value !== undefined)).toHaveLength(panel.bars.length);
      expect(own.filter((b) => b.stacked !== undefined)).toHaveLength(panel.bars.filter((b) => b.stacked !== undefined).length);
      const perUnit = own.map((b) => b.height / (b.value ?? b.stacked ?? NaN));
      for (const ratio of perUnit) expect(ratio).toBeCloseTo(perUnit[0] ?? NaN, 2);
      for (const bar of panel.bars) {
        const rect = own.find((b) => b.group === bar.group && b.series === bar.series && b.value !== undefined);
        expect(rect?.value).toBe(bar.value);
      }
    }
    // A stacked segment sits on its bar.
    const base = drawn.find((b) => b.panel === 'CPU per call' && b.series === 'this server' && b.value !== undefined);
    const top = drawn.find((b) => b.panel === 'CPU per call' && b.series === 'this server' && b.stacked !== undefined);
    expect((top?.y ?? NaN) + (top?.height ?? NaN)).toBeCloseTo(base?.y ?? NaN, 0);
  });

  it('ends the axis on a round number at or above the tallest bar', () => {
    expect(niceMax(12924)).toBe(15000);
    expect(niceMax(5755)).toBe(6000);
    expect(niceMax(2262)).toBe(2500);
    expect(niceMax(100)).toBe(100);
    expect(niceMax(0)).toBe(1);
    expect(svg).toContain('>15,000</text>');
  });
});
