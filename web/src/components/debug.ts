// What the camera view's players are doing, for the end-to-end tests and for a person in the console:
// `window.__spectare.live`, `window.__spectare.playback`. Plain data, written by the players, read by nobody else.

type Debug = Record<string, unknown>;

declare global {
  interface Window {
    __spectare?: Record<string, Debug>;
  }
}

/** The record `window.__spectare[name]`, made empty for a new player. */
export function debugState(name: string): Debug {
  const all = (window.__spectare ??= {});
  return (all[name] = {});
}
