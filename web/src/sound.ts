// The camera view's sound, pure: the viewer's choice (muted or not, and the volume) as remembered in localStorage,
// what a control does to it, what each video element plays at, whether a stream has sound, and what to do when the
// browser refuses to play with sound.

/** The viewer's choice. `volume` (0..1, never 0: dragging the slider to 0 mutes) is kept while muted, so unmuting
 * comes back at it. */
export interface Sound {
  muted: boolean;
  volume: number;
}

/** What one <video> element is set to. */
export interface ElementSound {
  muted: boolean;
  volume: number;
}

/** Muted until the viewer unmutes: browsers refuse to start video with sound before a click on the page. */
export const DEFAULT_SOUND: Sound = { muted: true, volume: 1 };
export const SOUND_KEY = "spectare.sound";
const MIN_VOLUME = 0.01;

/** The part of `Storage` this needs (localStorage in the page). */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** The remembered choice; the default when there is none or it cannot be read (storage disabled, another shape). */
export function readSound(store: KeyValueStore | null): Sound {
  let raw: unknown;
  try {
    raw = JSON.parse(store?.getItem(SOUND_KEY) ?? "null");
  } catch {
    return DEFAULT_SOUND;
  }
  if (typeof raw !== "object" || raw === null) return DEFAULT_SOUND;
  const { muted, volume } = raw as Record<string, unknown>;
  if (typeof muted !== "boolean" || typeof volume !== "number" || !Number.isFinite(volume)) return DEFAULT_SOUND;
  return { muted, volume: Math.min(1, Math.max(MIN_VOLUME, volume)) };
}

/** Remember the choice; a store that refuses (private mode, quota) leaves it for this page only. */
export function writeSound(store: KeyValueStore | null, sound: Sound): void {
  try {
    store?.setItem(SOUND_KEY, JSON.stringify(sound));
  } catch {
    // nothing to do: the choice holds until the page is left
  }
}

/** The mute button: it acts on what the viewer hears (`refused`: the browser made it muted although the choice is
 * sound), so after a refusal one click gives sound. Unmuting at volume 0 cannot happen: the volume is never 0. */
export const toggled = (sound: Sound, refused: boolean): Sound =>
  ({ ...sound, muted: !(sound.muted || refused) });

/** The volume slider moved to `volume`: 0 mutes (keeping the volume to come back to), anything else unmutes. */
export function withVolume(sound: Sound, volume: number): Sound {
  if (!(volume > 0)) return { ...sound, muted: true };
  return { muted: false, volume: Math.min(1, Math.max(MIN_VOLUME, volume)) };
}

/** What the shown element plays at: the choice, muted while the browser refuses sound (until the next click). */
export const heard = (sound: Sound, refused: boolean): ElementSound => ({ muted: sound.muted || refused, volume: sound.volume });

/** Where the slider stands: at 0 while muted, as media players show it. */
export const sliderValue = (sound: Sound, refused: boolean) => (sound.muted || refused ? 0 : sound.volume);

/** One element's setting: the shown element plays as heard, every other one (the recorded player's hidden element,
 * loading the next window) stays muted, so two never sound at once. */
export const elementSound = (shownSound: ElementSound, shown: boolean): ElementSound =>
  ({ muted: !shown || shownSound.muted, volume: shownSound.volume });

/** A `play()` that failed: with sound refused by the browser's autoplay policy (`NotAllowedError`), play muted
 * instead of standing still; anything else (a newer load aborted it, no source yet) is not about sound. */
export const playMutedAfter = (errorName: string, muted: boolean) => !muted && errorName === "NotAllowedError";

/** Whether a codecs list (`avc1.64001f,mp4a.40.2`, an RFC 6381 `codecs` parameter) names a sound codec. */
export function codecsHaveSound(codecs: string): boolean {
  return codecs.split(",").some((codec) => /^\s*(mp4a|opus|ac-3|ec-3|flac|mp3|alac)\b/i.test(codec));
}

/** The live WebSocket's `stream` message (services/api/live.py) says the camera has sound: its `audio`, or both
 * codecs in its mime. */
export function liveHasSound(stream: { mime: string; audio?: unknown }): boolean {
  if (stream.audio) return true;
  const codecs = /codecs\s*=\s*"?([^";]*)/i.exec(stream.mime);
  return codecs !== null && codecsHaveSound(codecs[1]);
}

/** hls.js's BUFFER_CODECS for a recorded chunk: an `audio` track, or one `audiovideo` track (an init segment with
 * both, as Spectare's chunks have) whose codecs include a sound codec. */
export function recordedHasSound(tracks: { audio?: unknown; audiovideo?: { codec?: string } }): boolean {
  return Boolean(tracks.audio) || codecsHaveSound(tracks.audiovideo?.codec ?? "");
}
