import { useEffect, useState } from "preact/hooks";
import {
  heard, playMutedAfter, readSound, sliderValue, toggled, withVolume, writeSound, type ElementSound, type KeyValueStore,
  type Sound,
} from "../sound";

/** The viewer's sound in the camera view, one for live and playback alike: the remembered choice, whether the
 * browser refused sound this time (autoplay before any click), whether what plays has a sound track (the players
 * say so), and what the shown element plays at. */
export interface SoundState {
  sound: Sound;
  refused: boolean;
  hasSound: boolean;
  shownSound: ElementSound;
  toggle: () => void;
  setVolume: (volume: number) => void;
  onRefused: () => void;
  onHasSound: (has: boolean) => void;
}

const storage = (): KeyValueStore | null => {
  try {
    return window.localStorage;
  } catch {
    return null; // storage disabled: the choice lasts as long as the page
  }
};

export function useSound(camera: string): SoundState {
  const [sound, setSound] = useState<Sound>(() => readSound(storage()));
  const [refused, setRefused] = useState(false);
  const [hasSound, setHasSound] = useState(false);
  useEffect(() => setHasSound(false), [camera]); // another camera: no button until its stream says it has sound

  const choose = (next: Sound) => {
    setRefused(false); // a click or a slider move is a user gesture: sound may play now
    setSound(next);
    writeSound(storage(), next);
  };
  return {
    sound, refused, hasSound, shownSound: heard(sound, refused),
    toggle: () => choose(toggled(sound, refused)),
    setVolume: (volume) => choose(withVolume(sound, volume)),
    onRefused: () => setRefused(true),
    onHasSound: setHasSound,
  };
}

/** Put `sound` on an element. */
export function applySound(video: HTMLVideoElement, sound: ElementSound): void {
  video.volume = sound.volume;
  video.muted = sound.muted;
}

/** `video.play()`, and when the browser refuses it with sound (no click on the page yet), muted: the picture plays
 * on, and `onRefused` has the view show it muted. */
export async function playAllowingSound(video: HTMLVideoElement, onRefused: () => void): Promise<void> {
  try {
    await video.play();
  } catch (exc) {
    if (!playMutedAfter((exc as DOMException).name, video.muted)) return;
    video.muted = true;
    onRefused();
    await video.play().catch(() => undefined);
  }
}

/** A speaker button (mute / unmute) and a volume slider, for a camera whose stream has sound. */
export function SoundControls({ state }: { state: SoundState }) {
  const muted = state.shownSound.muted;
  const label = muted ? "Unmute" : "Mute";
  return (
    <span class="cv-sound" role="group" aria-label="sound">
      <button type="button" class={`cv-speaker${muted ? "" : " on"}`} onClick={state.toggle} aria-label={label}
        title={state.refused ? "The browser started the video muted: click for sound" : label}>
        <SpeakerIcon muted={muted} />
      </button>
      <input type="range" class="cv-volume" min={0} max={1} step={0.05} aria-label="Volume"
        value={sliderValue(state.sound, state.refused)}
        onInput={(event) => state.setVolume(Number(event.currentTarget.value))} />
    </span>
  );
}

function SpeakerIcon({ muted }: { muted: boolean }) {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor"
      stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
      <path d="M4 9h4l5-4v14l-5-4H4z" fill="currentColor" />
      {muted ? (
        <path d="M17 9l5 6M22 9l-5 6" />
      ) : (
        <path d="M16.5 8.5a5 5 0 0 1 0 7M19 6a8.5 8.5 0 0 1 0 12" />
      )}
    </svg>
  );
}
