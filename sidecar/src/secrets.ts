// How the sidecar reads a secret given as VAR or VAR_FILE: the rules of scripts/secret-env.sh,
// which every other poolguard image uses (test/unit/secret-env.test.ts runs both on the same
// cases). Pure but for the file read, which is passed in.
import { readFileSync, statSync } from 'node:fs';

export type SecretResult = { value: string } | { problem: string } | { unset: true };

export interface SecretFs {
  read: (path: string) => string;
  /** 'file', 'directory', 'other', or undefined when nothing is there. */
  kind: (path: string) => 'file' | 'directory' | 'other' | undefined;
}

export const realFs: SecretFs = {
  read: (path) => readFileSync(path, 'utf8'),
  kind: (path) => {
    try {
      const s = statSync(path);
      return s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
    } catch {
      return undefined;
    }
  },
};

/** The content rules; what names the source in the problem. */
function checkValue(what: string, value: string): string | undefined {
  if (value === '') return `${what} is empty`;
  if (/^\s+$/.test(value)) return `${what} holds only whitespace`;
  if (value.includes('\r')) return `${what} holds a carriage return (CR): the secret must be one line`;
  if (value.includes('\n')) return `${what} holds more than one line: the secret must be one line`;
  return undefined;
}

export function readSecret(name: string, env: NodeJS.ProcessEnv, fs: SecretFs = realFs): SecretResult {
  const fileVar = `${name}_FILE`;
  const direct = env[name] ?? '';
  const file = env[fileVar] ?? '';
  if (direct !== '' && file !== '') return { problem: `both ${name} and ${fileVar} are set; set only one` };
  if (file !== '') {
    const kind = fs.kind(file);
    if (kind === 'directory') return { problem: `${fileVar}: ${file} is a directory, not a file` };
    if (kind === undefined) return { problem: `${fileVar}: ${file} does not exist` };
    if (kind !== 'file') return { problem: `${fileVar}: ${file} is not a regular file` };
    let content: string;
    try {
      content = fs.read(file);
    } catch {
      return { problem: `${fileVar}: cannot read ${file} (permission denied for uid ${process.getuid?.() ?? '?'})` };
    }
    // One final line ending: LF, or CR LF.
    content = content.replace(/\r?\n$/, '');
    const problem = checkValue(`${fileVar}: ${file}`, content);
    return problem ? { problem } : { value: content };
  }
  if (direct !== '') {
    const problem = checkValue(name, direct);
    return problem ? { problem } : { value: direct };
  }
  return { unset: true };
}
