// One set of cases for the two secret readers: scripts/secret-env.sh (every image's entrypoint and
// the host's preflight) and the sidecar's src/secrets.ts. Each case runs through both; they must
// agree on the value or on the exact problem.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSecret, type SecretResult } from '../../src/secrets.js';
import { ROOT } from '../e2e/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'poolguard-secret-env-'));
const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
mkdirSync(join(dir, 'a-directory'));

function bash(env: Record<string, string>): SecretResult {
  const out = execFileSync('bash', ['-c', `set -euo pipefail; source "${ROOT}/scripts/secret-env.sh"; rc=0; secret_get POOLGUARD_S || rc=$?; printf '%s\\0%s\\0%s' "$rc" "$SECRET_VALUE" "$SECRET_PROBLEM"`], {
    env: { PATH: process.env.PATH, LANG: 'C.UTF-8', ...env },
  }).toString('utf8');
  const [rc, value, problem] = out.split('\0');
  return rc === '0' ? { value: value! } : rc === '2' ? { unset: true } : { problem: problem! };
}

const F = 'POOLGUARD_S_FILE';
const cases: [string, Record<string, string>, SecretResult][] = [
  ['a line with LF', { [F]: file('lf', 's3cret\n') }, { value: 's3cret' }],
  ['no final line ending', { [F]: file('bare', 's3cret') }, { value: 's3cret' }],
  ['a line with CRLF', { [F]: file('crlf', 's3cret\r\n') }, { value: 's3cret' }],
  ['special characters and inner spaces', { [F]: file('special', `p@ss:w/rd%25#?&"dq'sq x ä✓\n`) }, { value: `p@ss:w/rd%25#?&"dq'sq x ä✓` }],
  ['an empty file', { [F]: file('empty', '') }, { problem: `${F}: ${join(dir, 'empty')} is empty` }],
  ['only a line ending', { [F]: file('nl', '\n') }, { problem: `${F}: ${join(dir, 'nl')} is empty` }],
  ['only whitespace', { [F]: file('ws', '  \t \n') }, { problem: `${F}: ${join(dir, 'ws')} holds only whitespace` }],
  ['blank lines', { [F]: file('blank', ' \n\n') }, { problem: `${F}: ${join(dir, 'blank')} holds only whitespace` }],
  ['CRLF lines', { [F]: file('crlf2', 'one\r\ntwo\r\n') }, { problem: `${F}: ${join(dir, 'crlf2')} holds a carriage return (CR): the secret must be one line` }],
  ['a lone CR at the end', { [F]: file('cr', 's3cret\r') }, { problem: `${F}: ${join(dir, 'cr')} holds a carriage return (CR): the secret must be one line` }],
  ['two lines', { [F]: file('two', 'one\ntwo\n') }, { problem: `${F}: ${join(dir, 'two')} holds more than one line: the secret must be one line` }],
  ['a directory', { [F]: join(dir, 'a-directory') }, { problem: `${F}: ${join(dir, 'a-directory')} is a directory, not a file` }],
  ['a missing file', { [F]: join(dir, 'missing') }, { problem: `${F}: ${join(dir, 'missing')} does not exist` }],
  ['not a regular file', { [F]: '/dev/null' }, { problem: `${F}: /dev/null is not a regular file` }],
  ['both forms', { POOLGUARD_S: 'x', [F]: file('both', 'y') }, { problem: `both POOLGUARD_S and ${F} are set; set only one` }],
  ['the value itself', { POOLGUARD_S: 's3cret' }, { value: 's3cret' }],
  ['a value of whitespace', { POOLGUARD_S: '   ' }, { problem: 'POOLGUARD_S holds only whitespace' }],
  ['a value of two lines', { POOLGUARD_S: 'a\nb' }, { problem: 'POOLGUARD_S holds more than one line: the secret must be one line' }],
  ['neither (empty strings, as compose passes unset variables)', { POOLGUARD_S: '', [F]: '' }, { unset: true }],
  ['neither', {}, { unset: true }],
];

describe('secret readers: scripts/secret-env.sh and src/secrets.ts agree', () => {
  it.each(cases)('%s', (_name, env, expected) => {
    expect(readSecret('POOLGUARD_S', env)).toEqual(expected);
    expect(bash(env)).toEqual(expected);
  });

  it('secret_export and secret_require export the value and unset VAR_FILE; a problem returns 1', () => {
    const out = execFileSync('bash', ['-c', `set -euo pipefail; source "${ROOT}/scripts/secret-env.sh"
      secret_export A; secret_export B default-b; secret_require C
      printf '%s|%s|%s|%s\\n' "$A" "$B" "$C" "\${A_FILE-unset}"
      rc=0; secret_require D || rc=$?; printf '%s %s\\n' "$rc" "$SECRET_PROBLEM"
      rc=0; secret_export E || rc=$?; printf '%s %s\\n' "$rc" "$SECRET_PROBLEM"`], {
      env: { PATH: process.env.PATH, A_FILE: file('a', 'from-file\n'), C: 'direct-c', E_FILE: file('e', '') },
    }).toString('utf8');
    expect(out.split('\n')).toEqual(['from-file|default-b|direct-c|unset', '1 D (or D_FILE) is required', `1 E_FILE: ${join(dir, 'e')} is empty`, '']);
  });
});
