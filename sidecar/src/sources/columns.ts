// Column access by name, tolerant of renames between PgBouncer versions: the first name that
// the row has wins. Values arrive as strings (int8/numeric) or numbers; both are accepted.
import type { Row } from '../pg-connection.js';

export function num(row: Row, ...names: string[]): number {
  for (const name of names) {
    if (name in row && row[name] !== null && row[name] !== undefined && row[name] !== '') {
      const n = Number(row[name]);
      if (Number.isFinite(n)) return n;
    }
  }
  return 0;
}

export function optNum(row: Row, ...names: string[]): number | undefined {
  return names.some((n) => n in row && row[n] !== null && row[n] !== '') ? num(row, ...names) : undefined;
}

/** A number, or null when the column is NULL or missing (an LSN, an interval, a timestamp Postgres has none of). */
export function nullableNum(row: Row, ...names: string[]): number | null {
  for (const name of names) {
    const v = row[name];
    if (v !== null && v !== undefined && v !== '' && Number.isFinite(Number(v))) return Number(v);
  }
  return null;
}

export function str(row: Row, ...names: string[]): string {
  for (const name of names) {
    const v = row[name];
    if (v !== null && v !== undefined) return String(v);
  }
  return '';
}
