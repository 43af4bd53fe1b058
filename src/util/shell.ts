/** Quotes a string for POSIX sh: everything literal, including $(...), backticks, quotes and newlines. */
export function shq(s: string): string {
  if (s === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
