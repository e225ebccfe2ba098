// Every package npm installs from the lock file must run on the Node.js of the image. npm only
// warns (EBADENGINE) when one does not, and the warning scrolls by in a docker build.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

// The sidecar image installs Debian trixie's `nodejs` package (Dockerfile: FROM debian:trixie-slim,
// apt-get install nodejs), which is Node.js 20.19.2. Raise this when the base image moves on.
const IMAGE_NODE = '20.19.2';

interface LockPackage {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  engines?: Record<string, string> | string[];
}

const lock = JSON.parse(readFileSync(fileURLToPath(new URL('../../package-lock.json', import.meta.url)), 'utf8')) as { lockfileVersion: number; packages: Record<string, LockPackage> };
const manifest = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { engines?: { node?: string } };

/** The node range a lock entry declares: engines.node, or the "node <range>" item of an old array form. */
function nodeRange(engines: LockPackage['engines']): string | undefined {
  if (engines === undefined) return undefined;
  if (Array.isArray(engines)) return engines.find((e) => /^node\b/.test(e))?.replace(/^node\s*/, '');
  return engines.node;
}

describe(`every installed package supports the image's Node.js ${IMAGE_NODE}`, () => {
  it('the lock file lists packages (lockfileVersion 3)', () => {
    expect(lock.lockfileVersion).toBeGreaterThanOrEqual(2);
    expect(Object.keys(lock.packages).length).toBeGreaterThan(100);
  });

  it('the sidecar itself declares a range that admits it', () => {
    expect(semver.satisfies(IMAGE_NODE, manifest.engines?.node ?? '*')).toBe(true);
  });

  it('no package in package-lock.json has an engines.node range that excludes it', () => {
    const excluded: string[] = [];
    for (const [path, pkg] of Object.entries(lock.packages)) {
      if (path === '') continue; // the root project: checked above
      const range = nodeRange(pkg.engines);
      if (range === undefined || range.trim() === '') continue;
      // An unparsable range is reported too: npm could not check it either.
      if (semver.validRange(range) === null || !semver.satisfies(IMAGE_NODE, range)) {
        excluded.push(`${path.replace(/^.*node_modules\//, '')}@${pkg.version ?? '?'} (${path}) needs node ${range}${pkg.dev ? ' [dev]' : ''}`);
      }
    }
    expect(excluded).toEqual([]);
  });
});
