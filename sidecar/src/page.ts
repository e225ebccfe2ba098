// The status page's files (sidecar/page/: HTML, CSS and a checked JavaScript module, served as
// they are: no build step), read once into memory. buildApp serves them from here.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PageAsset {
  body: Buffer;
  contentType: string;
  etag: string;
}

/** name (index.html, status.js ...) -> its bytes. */
export type PageAssets = Map<string, PageAsset>;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The page's weight budget: every file it loads, uncompressed (a unit test and the browser test hold it). */
export const PAGE_WEIGHT_BUDGET_BYTES = 100 * 1024;

/** sidecar/page/, from src/ (tests) and from dist/ (the image) alike. */
export const PAGE_DIR = fileURLToPath(new URL('../page/', import.meta.url));

/** Reads the page's served files (the types above; tsconfig.json and the like stay out). */
export function loadPage(dir = PAGE_DIR): PageAssets {
  const assets: PageAssets = new Map();
  for (const name of readdirSync(dir).sort()) {
    const contentType = TYPES[extname(name)];
    if (!contentType) continue;
    const body = readFileSync(join(dir, name));
    assets.set(name, { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  if (!assets.has('index.html')) throw new Error(`the status page is missing: no index.html in ${dir}`);
  return assets;
}

/** The bytes of every file served. */
export const pageWeight = (assets: PageAssets): number => [...assets.values()].reduce((n, a) => n + a.body.length, 0);
