/**
 * Writes the router type the published package carries: the server's procedures (inputs, outputs) and error
 * shape, spelled out in full, with no reference to the server's workspace packages (`@asyncscope/api` exists
 * only here; its AppRouter's context type would drag the whole server — database, pool, workers — into the
 * package). TypeScript's checker prints each type; the named types of ours it still refers to (UserPage,
 * ActivityEvent...) are written out as declarations of their own, and tRPC's as imports of its public
 * `unstable-core-do-not-import` entry (the one its own published types resolve to, pinned with @trpc/server).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import process from 'node:process';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const TRPC_CORE = '@trpc/server/unstable-core-do-not-import';

/**
 * Returns the declaration text; `AppRouter` is its exported type. With `check`, first proves it agrees
 * with the server's router (a second program: the build skips it for time, published-router.test.ts runs it).
 */
export function routerTypes({ check: checked = true } = {}) {
  // Inside the package, so '@asyncscope/api' resolves through its node_modules; one per run (builds may overlap).
  const probeDir = mkdtempSync(join(here, '..', '.router-probe-'));
  const probe = join(probeDir, 'probe.ts');
  writeFileSync(probe, "import type { AppRouter } from '@asyncscope/api';\nexport type Record_ = AppRouter['_def']['record'];\nexport type ErrorShape_ = AppRouter['_def']['_config']['$types']['errorShape'];\n");
  try {
    const program = ts.createProgram([probe], {
      strict: true, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, target: ts.ScriptTarget.ES2022,
      allowImportingTsExtensions: true, noEmit: true, skipLibCheck: true, types: ['node'], lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    });
    const errors = ts.getPreEmitDiagnostics(program, program.getSourceFile(probe));
    if (errors.length > 0) throw new Error(ts.formatDiagnostics(errors, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => here, getNewLine: () => '\n' }));
    const checker = program.getTypeChecker();
    const aliases = program.getSourceFile(probe).statements.filter(ts.isTypeAliasDeclaration);
    const typeOf = (name) => checker.getTypeAtLocation(aliases.find((a) => a.name.text === name).name);
    const flags = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseFullyQualifiedType;
    const isOurs = (file) => !file.includes('/node_modules/');

    // Our named types reachable from the router: name → text of its definition.
    const named = new Map();
    const visited = new Set();
    const pending = [];
    const definition = (type, symbol) => {
      if (symbol.flags & ts.SymbolFlags.TypeAlias) {
        // Names the alias's own text mentions (an intersection with a union is printed distributed otherwise).
        const walk = (node) => {
          if (ts.isTypeReferenceNode(node)) {
            let target = checker.getSymbolAtLocation(node.typeName);
            if (target && target.flags & ts.SymbolFlags.Alias) target = checker.getAliasedSymbol(target);
            if (target) pending.push(checker.getDeclaredTypeOfSymbol(target));
          }
          ts.forEachChild(node, walk);
        };
        walk(symbol.declarations[0].type);
      }
      if (symbol.flags & ts.SymbolFlags.TypeAlias) return checker.typeToString(checker.getDeclaredTypeOfSymbol(symbol), undefined, flags | ts.TypeFormatFlags.InTypeAlias);
      if (symbol.flags & ts.SymbolFlags.Interface && !type.typeParameters?.length && checker.getIndexInfosOfType(type).length === 0) {
        const members = checker.getPropertiesOfType(type).map((p) => {
          const decl = p.declarations?.[0];
          const readonly = decl && ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Readonly ? 'readonly ' : '';
          return `${readonly}${JSON.stringify(p.name)}${p.flags & ts.SymbolFlags.Optional ? '?' : ''}: ${checker.typeToString(checker.getTypeOfSymbol(p), undefined, flags)};`;
        });
        return `{ ${members.join(' ')} }`;
      }
      throw new Error(`cannot spell out ${symbol.name} (a generic, an indexed interface, or a class)`);
    };
    const visit = (type, depth) => {
      if (visited.has(type) || depth > 40) return;
      visited.add(type);
      for (const symbol of [type.aliasSymbol, type.symbol]) {
        const file = symbol?.declarations?.[0]?.getSourceFile().fileName;
        if (!file || !isOurs(file) || file === probe || !(symbol.flags & (ts.SymbolFlags.TypeAlias | ts.SymbolFlags.Interface))) continue;
        const seen = named.get(symbol.name);
        if (seen && seen.symbol !== symbol) throw new Error(`two types named ${symbol.name}: rename one`);
        if (!seen) named.set(symbol.name, { symbol, text: definition(type, symbol) });
      }
      for (const t of [...(type.aliasTypeArguments ?? []), ...(type.types ?? [])]) visit(t, depth + 1);
      if (type.flags & ts.TypeFlags.Object) {
        if (type.objectFlags & ts.ObjectFlags.Reference) for (const t of checker.getTypeArguments(type)) visit(t, depth + 1);
        for (const p of checker.getPropertiesOfType(type)) visit(checker.getTypeOfSymbol(p), depth + 1);
        for (const info of checker.getIndexInfosOfType(type)) visit(info.type, depth + 1);
      }
    };
    const record = typeOf('Record_');
    const errorShape = typeOf('ErrorShape_');
    visit(record, 0);
    visit(errorShape, 0);
    while (pending.length > 0) visit(pending.pop(), 0);

    // tRPC's bundled declaration chunks export their types under short aliases: map them back to names.
    const chunkNames = new Map();
    const rewrite = (text) => text.replace(/import\("([^"]+)"\)\.([A-Za-z_$][\w$]*)/g, (_, file, name) => {
      if (isOurs(file)) return name;
      if (file.includes('/@trpc/server/dist/')) {
        if (!chunkNames.has(file)) {
          const source = readFileSync(`${file}.d.mts`, 'utf8');
          chunkNames.set(file, new Map([...source.matchAll(/([A-Za-z_$][\w$]*) as ([A-Za-z_$][\w$]*)/g)].map((m) => [m[2], m[1]])));
        }
        const real = chunkNames.get(file).get(name) ?? name;
        return `import("${TRPC_CORE}").${real}`;
      }
      throw new Error(`the router refers to ${name} from ${file}, which the package cannot carry`);
    });
    const lines = [
      '// Generated by scripts/router-types.mjs from @asyncscope/api: the router as clients see it.',
      "import type { inferRouterInputs, inferRouterOutputs, TRPCBuiltRouter } from '@trpc/server';",
      '',
      ...[...named].sort(([a], [b]) => a.localeCompare(b)).map(([name, { text }]) => `export type ${name} = ${rewrite(text)};`),
      `export type ErrorShape = ${rewrite(checker.typeToString(errorShape, undefined, flags))};`,
      `export type AppRouter = TRPCBuiltRouter<{ ctx: object; meta: object; errorShape: ErrorShape; transformer: false }, ${rewrite(checker.typeToString(record, undefined, flags))}>;`,
      'export type RouterInputs = inferRouterInputs<AppRouter>;',
      'export type RouterOutputs = inferRouterOutputs<AppRouter>;',
      '',
    ];
    const text = lines.join('\n');
    if (checked) check(probeDir, text, program);
    return text;
  } finally {
    rmSync(probeDir, { recursive: true, force: true });
  }
}

/** Fails unless the written router and the server's agree on every input, output and error (both ways). */
function check(probeDir, text, oldProgram) {
  writeFileSync(join(probeDir, 'router.ts'), text);
  const file = join(probeDir, 'check.ts');
  writeFileSync(file, [
    "import type { AppRouter as Server } from '@asyncscope/api';",
    "import type { inferRouterError, inferRouterInputs, inferRouterOutputs } from '@trpc/server';",
    "import type { AppRouter as Published } from './router.ts';",
    'type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;',
    'export const inputs: Same<inferRouterInputs<Server>, inferRouterInputs<Published>> = true;',
    'export const outputs: Same<inferRouterOutputs<Server>, inferRouterOutputs<Published>> = true;',
    'export const errors: Same<inferRouterError<Server>, inferRouterError<Published>> = true;',
    '',
  ].join('\n'));
  const program = ts.createProgram([file], {
    strict: true, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, target: ts.ScriptTarget.ES2022,
    allowImportingTsExtensions: true, noEmit: true, skipLibCheck: true, types: ['node'], lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
  }, undefined, oldProgram); // reuses the files the first program parsed
  const errors = [file, join(probeDir, 'router.ts')].flatMap((f) => ts.getPreEmitDiagnostics(program, program.getSourceFile(f)));
  if (errors.length > 0) throw new Error(`the written router type differs from the server's:\n${ts.formatDiagnostics(errors, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => here, getNewLine: () => '\n' })}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(routerTypes());
