// Literal values out of SQL text: what a session's current query may carry (a password in
// ALTER ROLE, a customer's e-mail in a WHERE clause) must not leave the sidecar. Replaces every
// string constant ('…' with '' inside, E'…' with backslash escapes, $tag$…$tag$), every numeric
// constant and every bit/hex string with "?"; a constant cut off by Postgres's
// track_activity_query_size is replaced to the end. Identifiers ("…" quoted or not), comments
// and keywords are kept. Pure; no dependency.

const IDENT = /[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/y;
const NUMBER = /(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\d[\d_]*\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/y;
const DOLLAR_TAG = /\$([A-Za-z_][A-Za-z0-9_]*)?\$/y;

export function redactLiterals(sql: string): string {
  let out = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    // Comments: kept as they are.
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? n : end;
      out += sql.slice(i, stop);
      i = stop;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      out += sql.slice(i, stop);
      i = stop;
      continue;
    }
    // Quoted identifiers: kept.
    if (c === '"') {
      let j = i + 1;
      while (j < n) {
        if (sql[j] === '"' && sql[j + 1] === '"') j += 2;
        else if (sql[j] === '"') break;
        else j += 1;
      }
      out += sql.slice(i, Math.min(n, j + 1));
      i = j + 1;
      continue;
    }
    // String constants, with their prefixes: E'', B'', X'', U&'', N''.
    const prefix = /^(?:[eE]|[bB]|[xX]|[nN]|[uU]&)'/.exec(sql.slice(i, i + 3));
    const isIdentPrev = i > 0 && /[A-Za-z0-9_$]/.test(sql[i - 1]!);
    if (c === "'" || (prefix && !isIdentPrev)) {
      const escapes = c === 'e' || c === 'E';
      let j = i + (prefix ? prefix[0].length : 1);
      for (;;) {
        if (j >= n) break;
        if (escapes && sql[j] === '\\') j += 2;
        else if (sql[j] === "'" && sql[j + 1] === "'") j += 2;
        else if (sql[j] === "'") {
          j += 1;
          break;
        } else j += 1;
      }
      out += '?';
      i = j;
      continue;
    }
    // Dollar-quoted constants ($$…$$, $tag$…$tag$); a parameter ($1) is kept.
    if (c === '$' && !isIdentPrev) {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(sql);
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        out += '?';
        i = end === -1 ? n : end + tag[0].length;
        continue;
      }
    }
    if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      IDENT.lastIndex = i;
      const m = IDENT.exec(sql)!;
      out += m[0];
      i += m[0].length;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      // A parameter's number ($12) was consumed with its "$" below; a number after a letter is part of an identifier (handled above).
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(sql);
      if (m) {
        out += '?';
        i += m[0].length;
        continue;
      }
    }
    if (c === '$' && /[0-9]/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (j < n && /[0-9]/.test(sql[j]!)) j += 1;
      out += sql.slice(i, j);
      i = j;
      continue;
    }
    out += c;
    i += 1;
  }
  return out;
}

/** The first `max` characters of a redacted statement, with "…" when cut. */
export function querySummary(sql: string, max = 200): string {
  const r = redactLiterals(sql).replace(/\s+/g, ' ').trim();
  return r.length > max ? `${r.slice(0, max - 1)}…` : r;
}
