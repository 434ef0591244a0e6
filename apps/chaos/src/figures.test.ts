import { describe, expect, it } from 'vitest';
import { assertChecksPass, countBy, countsText, formatReport, percentile, pct, type Figure } from './figures';
import { classify } from './http';

describe('figures', () => {
  it('takes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('counts and prints counts largest first', () => {
    expect(countsText(countBy(['a', 'b', 'b'], (x) => x))).toBe('b 2, a 1');
    expect(countsText(new Map())).toBe('none');
    expect(pct(19, 20)).toBe('95.0% (19/20)');
  });

  it('aligns figures and marks checks', () => {
    const text = formatReport({ title: 't', figures: [['a', 1], ['longer', 'x']], checks: [{ name: 'held', ok: true }, { name: 'broke', ok: false }] });
    expect(text.split('\n')).toEqual(['== t', '  a       1', '  longer  x', '  PASS  held', '  FAIL  broke']);
  });
});

describe('classify', () => {
  it('reads a tRPC answer: data, error code, or a bare HTTP status', () => {
    expect(classify(200, '{"result":{"data":{"id":1}}}')).toEqual({ code: 'OK', data: { id: 1 } });
    expect(classify(503, '{"error":{"message":"down","data":{"code":"SERVICE_UNAVAILABLE"}}}')).toEqual({ code: 'SERVICE_UNAVAILABLE', message: 'down' });
    expect(classify(408, 'Request Timeout').code).toBe('HTTP 408');
    expect(classify(200, '[{"result":{}}]').code).toBe('OK');
  });
});

describe('assertChecksPass', () => {
  it('passes when every check held, and otherwise throws with the failed checks first and the figures after', () => {
    const report = { title: 't', figures: [['p99', '12 ms']] as Figure[], checks: [{ name: 'held', ok: true }, { name: 'broke', ok: false }] };
    expect(() => { assertChecksPass({ ...report, checks: [{ name: 'held', ok: true }] }); }).not.toThrow();
    expect(() => { assertChecksPass(report); }).toThrow(/^FAIL broke\n== t\n {2}p99 {2}12 ms/);
  });
});
