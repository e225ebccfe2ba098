// Repository contracts: `make help` lists every target; .env.example documents every variable
// (one comment line above each) and every SIDECAR_ variable the config schema knows (set, or
// in the comment block of those compose derives).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

describe('repository contracts', () => {
  it('make help lists every phony target', () => {
    const makefile = readFileSync(`${ROOT}/Makefile`, 'utf8');
    const phony = /\.PHONY:([\s\S]*?)\n\n/.exec(makefile)![1]!.replace(/\\\n/g, ' ').split(/\s+/).filter(Boolean);
    const help = execFileSync('make', ['-s', '-C', ROOT, 'help'], { encoding: 'utf8' }).replace(/\x1b\[[0-9;]*m/g, '');
    const listed = help.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
    expect(phony.length).toBeGreaterThan(15);
    expect(phony.filter((t) => !listed.includes(t))).toEqual([]);
  });

  it('.env.example: a comment above every variable, and every SIDECAR_ variable of the schema', () => {
    const lines = readFileSync(`${ROOT}/.env.example`, 'utf8').split('\n');
    const vars: string[] = [];
    lines.forEach((line, i) => {
      const m = /^([A-Z_][A-Z0-9_]*)=/.exec(line);
      if (!m) return;
      vars.push(m[1]!);
      expect(lines[i - 1], `comment above ${m[1]}`).toMatch(/^# \S/);
    });
    // Every SIDECAR_ variable the schema accepts, minus the _FILE forms and compose-internal URLs.
    let unknown: string[] = [];
    try {
      loadConfig({ SIDECAR_NOT_A_VARIABLE: 'x' });
    } catch (err) {
      unknown = String((err as Error).message).match(/known: ([^)]*)/)![1]!.split(', ');
    }
    // The ones compose derives from other values are listed in a comment block.
    const text = lines.join('\n');
    expect(unknown.length).toBeGreaterThan(15);
    expect(unknown.filter((v) => !vars.includes(v) && !new RegExp(`^#.*\\b${v}\\b`, 'm').test(text))).toEqual([]);
  });
});
