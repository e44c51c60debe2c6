/**
 * CSV (RFC 4180) for reports a person opens in a spreadsheet: the API's accounting and access
 * reports and the regulator console's figures. Pure, so the browser pages use the same rules.
 */

/**
 * One RFC 4180 field: quoted when it holds a comma, quote, CR or LF (quotes doubled). Text that
 * a spreadsheet would run as a formula (leading = + - @, or a tab or CR before one: OWASP CSV
 * injection) gets a leading apostrophe. The API's events cannot hold control characters, but the
 * console also writes what a dropped (possibly tampered) export carries.
 */
export function csvField(value: string | number | boolean | null): string {
  if (value === null) return "";
  if (typeof value !== "string") return String(value);
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** RFC 4180 text: a header line, CRLF line breaks, one record per row. */
export function toCsv(header: string[], rows: Array<Array<string | number | boolean | null>>) {
  return [header, ...rows].map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
}
