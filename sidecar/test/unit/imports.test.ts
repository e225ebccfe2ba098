// Layers import downwards only: no module of src/ may reach itself through its imports, type-only
// imports included (a type import is still a dependency between layers). madge builds the graph
// with the TypeScript resolver of tsconfig.json, so `./config.js` specifiers resolve to the .ts files.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

const tsFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(SRC, join(dir, e.name))] : []));

describe('the import graph of src/', () => {
  it('has no cycle', async () => {
    const graph = await madge(SRC, {
      fileExtensions: ['ts'],
      tsConfig: join(ROOT, 'tsconfig.json'),
      // Type-only imports count: they tie the layers together as much as value imports do.
      detectiveOptions: { ts: { skipTypeImports: false }, es6: { skipTypeImports: false } },
    });
    // The graph must hold every file, and every relative import must have resolved: otherwise a
    // cycle through an unresolved import would go unseen.
    expect(Object.keys(graph.obj()).sort()).toEqual(tsFiles(SRC).sort());
    expect(graph.warnings().skipped).toEqual([]);
    expect(graph.circular()).toEqual([]);
  }, 30_000);
});
