// How the page writes numbers and times for a person: short, with units, "—" for unknown.

export const UNKNOWN = "—";

/** Seconds ago: "0.4 s", "12 s", "3 min", "2 h 5 min", "3 d". */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return UNKNOWN;
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) {
    const minutes = Math.floor((s % 3600) / 60);
    return minutes ? `${Math.floor(s / 3600)} h ${minutes} min` : `${Math.floor(s / 3600)} h`;
  }
  return `${Math.floor(s / 86_400)} d`;
}

function scaled(value: number, units: string[], step: number): string {
  let at = 0;
  while (Math.abs(value) >= step && at < units.length - 1) {
    value /= step;
    at += 1;
  }
  const digits = at === 0 || Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[at]}`;
}

/** Bits per second, decimal units as networks count them: "850 kbit/s", "2.40 Mbit/s". */
export function formatBitrate(bps: number | null | undefined): string {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return UNKNOWN;
  return scaled(bps, ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"], 1000);
}

/** Bytes, decimal units as disks are sold: "512 B", "1.50 GB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return UNKNOWN;
  return scaled(bytes, ["B", "kB", "MB", "GB", "TB"], 1000);
}

export function formatFps(fps: number | null | undefined): string {
  if (fps === null || fps === undefined || !Number.isFinite(fps)) return UNKNOWN;
  return fps >= 100 ? fps.toFixed(0) : fps.toFixed(fps >= 10 ? 1 : 2);
}

/** A detector score (0..1) as a percentage: "87 %". */
export const formatScore = (score: number) => `${Math.round(score * 100)} %`;

const pad = (n: number) => String(n).padStart(2, "0");

/** Local wall time of Unix seconds: "14:03:10", with the date when it is not `today`'s. */
export function formatWhen(unix: number, today: Date = new Date()): string {
  const at = new Date(unix * 1000);
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  const sameDay = at.getFullYear() === today.getFullYear() && at.getMonth() === today.getMonth()
    && at.getDate() === today.getDate();
  return sameDay ? time : `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${time}`;
}

/** Unix seconds as the value of an `<input type="datetime-local">` (local time, to the minute). */
export function toLocalInput(unix: number): string {
  const at = new Date(unix * 1000);
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

/** An `<input type="datetime-local">` value (local time) as Unix seconds; null when empty or unreadable. */
export function fromLocalInput(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s] = m;
  const at = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0));
  return Number.isNaN(at.getTime()) ? null : at.getTime() / 1000;
}
