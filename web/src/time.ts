// Times as the API speaks them: Unix seconds (floats). The page shows local time; URLs carry ISO 8601 UTC.

export const isoUtc = (unix: number) => new Date(unix * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

export function parseIsoOrUnix(text: string | undefined | null): number | null {
  if (!text) return null;
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms / 1000;
}
