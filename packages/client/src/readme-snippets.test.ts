/**
 * Every TypeScript block of the README compiles: each ```ts block is written out as a module of its own next
 * to this package (whose dependencies it imports: the client, the router's type, tRPC, eventsource, ws) and
 * typechecked strictly with the workspace's compiler options. A snippet that rots fails here.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const OUT_DIR = join(PACKAGE_DIR, '.readme-snippets');

/** The ```ts blocks of a markdown text, with the line each starts on. */
export function typescriptBlocks(markdown: string): { line: number; code: string }[] {
  const blocks: { line: number; code: string }[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i] ?? '')) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== '```') end++;
    blocks.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return blocks;
}

afterAll(() => { rmSync(OUT_DIR, { recursive: true, force: true }); });

describe('the README’s TypeScript snippets', () => {
  const blocks = typescriptBlocks(readFileSync(README, 'utf8'));

  it('finds them', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
  });

  it('each compiles, strictly, as a module of its own', () => {
    rmSync(OUT_DIR, { recursive: true, force: true });
    mkdirSync(OUT_DIR, { recursive: true });
    const files = blocks.map((block) => {
      const file = join(OUT_DIR, `readme-line-${block.line}.ts`);
      // `export {}` makes each a module (top-level await, no clashes between snippets).
      writeFileSync(file, `${block.code}\nexport {};\n`);
      return file;
    });
    const configPath = join(PACKAGE_DIR, 'tsconfig.json');
    const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
    if (!config) throw new Error(`cannot read ${configPath}`);
    const program = ts.createProgram(files, { ...config.options, noEmit: true, noUnusedLocals: false });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && files.includes(d.file.fileName))
      .map((d) => {
        const { line } = d.file?.getLineAndCharacterOfPosition(d.start ?? 0) ?? { line: 0 };
        const block = blocks[files.indexOf(d.file?.fileName ?? '')];
        return `README.md:${(block?.line ?? 0) + line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(problems).toEqual([]);
  }, 60_000);
});
