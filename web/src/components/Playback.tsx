import type HlsType from "hls.js/light";
import type { LevelLoadedData } from "hls.js/light";
import { useEffect, useLayoutEffect, useRef } from "preact/hooks";
import { api, cameraPath } from "../api";
import {
  laterNotice, nextWindowFrom, placeIn, shouldPrefetch, shouldSwap, windowFor, type PlacedSegment, type VodWindow, type WindowsAnswer,
} from "../playback";
import { elementSound, recordedHasSound, type ElementSound } from "../sound";
import { momentLabel, type Clock } from "../timeline";
import { debugState } from "./debug";
import { applySound, playAllowingSound } from "./SoundControls";

/** What the recorded player tells the view: the wall time playing (hls.js `playingDate`), a notice ("no footage
 * at ..."), that it ran out of footage, whether the footage playing has sound, and that the browser refused to
 * play it with sound (it then plays muted). */
export interface PlaybackEvents {
  onTime: (wall: number) => void;
  onNotice: (notice: string | null) => void;
  onEnd: () => void;
  onHasSound: (has: boolean) => void;
  onRefused: () => void;
}

/** A request to play: the moment, and a serial so that asking for the same moment twice plays it twice. */
export interface PlayRequest {
  t: number;
  serial: number;
}

/** Recorded footage with hls.js, one hour window (`vod/windows`) at a time: two <video> elements, the second
 * loading the next window's playlist while the first plays, swapped at the first's end without a stall. The shown
 * element plays at `sound`; the hidden one is always muted. */
export function Playback({ camera, request, rate, paused, sound, clock, events }: {
  camera: string; request: PlayRequest; rate: number; paused: boolean; sound: ElementSound; clock: Clock;
  events: PlaybackEvents;
}) {
  const videos = [useRef<HTMLVideoElement>(null), useRef<HTMLVideoElement>(null)];
  const player = useRef<RecordedPlayer | null>(null);
  const latest = useRef(events);
  latest.current = events;

  useEffect(() => {
    const made = (player.current = new RecordedPlayer(camera, [videos[0].current!, videos[1].current!], clock, {
      onTime: (wall) => latest.current.onTime(wall),
      onNotice: (notice) => latest.current.onNotice(notice),
      onEnd: () => latest.current.onEnd(),
      onHasSound: (has) => latest.current.onHasSound(has),
      onRefused: () => latest.current.onRefused(),
    }));
    made.setSound(sound);
    return () => made.destroy();
  }, [camera]);

  useEffect(() => void player.current?.play(request.t), [request.serial]);
  useEffect(() => player.current?.setRate(rate), [rate]);
  useEffect(() => player.current?.setPaused(paused), [paused]);
  // a layout effect: the element is (un)muted in the same commit as the speaker button's label, never after it
  useLayoutEffect(() => player.current?.setSound(sound), [sound.muted, sound.volume]);

  return (
    <div class="cv-stage">
      <video ref={videos[0]} class="cv-video recorded" muted playsInline />
      <video ref={videos[1]} class="cv-video recorded" muted playsInline />
    </div>
  );
}

type HlsClass = typeof HlsType;
let hlsModule: Promise<HlsClass> | null = null;
/** hls.js (its light build: no subtitles, alternate audio or DRM) is loaded with the first recorded playback. */
const loadHls = () => (hlsModule ??= import("hls.js/light").then((module) => module.default));

/** One video element and what plays in it. */
interface Slot {
  video: HTMLVideoElement;
  hls: HlsType | null;
  window: VodWindow | null;
  segments: PlacedSegment[];
  complete: boolean; // the playlist has ENDLIST: nothing more will be added
  ready: boolean; // its playlist is loaded and loading from its start position
  startPosition: number; // where on its playlist's timeline it was placed
  started: boolean; // the video is there (before hls.js seeks, it shows the first segment's first frame)
  hasSound: boolean | null; // its footage has a sound track (null: not known before its first chunk is parsed)
}

const ASK_EVERY_MS = 2000; // for the next window, while it has no footage yet

class RecordedPlayer {
  private slots: [Slot, Slot];
  private active = 0;
  private rate = 1;
  private paused = false;
  private sound: ElementSound = { muted: true, volume: 1 };
  private serial = 0; // each play() outdates the ones before it
  private prefetching: Promise<void> | null = null;
  private askedAt = 0;
  private timer: ReturnType<typeof setInterval>;
  private readonly debug = debugState("playback");

  constructor(
    private readonly camera: string,
    videos: [HTMLVideoElement, HTMLVideoElement],
    private readonly clock: Clock,
    private readonly events: PlaybackEvents,
  ) {
    const slot = (video: HTMLVideoElement): Slot =>
      ({ video, hls: null, window: null, segments: [], complete: false, ready: false, startPosition: 0, started: false,
        hasSound: null });
    this.slots = [slot(videos[0]), slot(videos[1])];
    Object.assign(this.debug,
      { asked: null, playingDate: null, firstPlayingDate: null, windows: [], swaps: 0, errors: [], hasSound: null });
    for (const [n, video] of videos.entries()) {
      video.addEventListener("ended", () => n === this.active && void this.ended());
      for (const ready of ["seeked", "canplay"]) video.addEventListener(ready, () => this.tick()); // start at once
      video.classList.toggle("active", n === 0);
    }
    this.timer = setInterval(() => this.tick(), 200);
  }

  destroy(): void {
    this.serial += 1;
    clearInterval(this.timer);
    for (const slot of this.slots) this.unload(slot);
  }

  setRate(rate: number): void {
    this.rate = rate;
    for (const slot of this.slots) slot.video.playbackRate = rate;
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    const video = this.slots[this.active].video;
    if (paused) video.pause();
    else if (this.slots[this.active].ready) this.start(video);
  }

  /** The shown element plays at `sound`, the hidden one muted. */
  setSound(sound: ElementSound): void {
    this.sound = sound;
    this.applySound();
    const slot = this.slots[this.active];
    if (!sound.muted && slot.started && !this.paused) this.start(slot.video); // refused with sound: muted
  }

  private applySound(): void {
    for (const [n, slot] of this.slots.entries()) applySound(slot.video, elementSound(this.sound, n === this.active));
  }

  private start(video: HTMLVideoElement): void {
    void playAllowingSound(video, this.events.onRefused);
  }

  /** Play from wall time `t`: a seek when the loaded playlist holds it, else the window that holds it (or the
   * next one with footage), its playlist placed so that `playingDate` is `t`. */
  async play(t: number): Promise<void> {
    const serial = (this.serial += 1);
    Object.assign(this.debug, { asked: t, askedAtMs: Date.now(), firstPlayingDate: null });
    const current = this.slots[this.active];
    const placed = current.ready ? placeIn(current.segments, t) : null;
    if (placed && current.window && t >= current.window.start - 2) {
      Object.assign(current, { startPosition: placed.position, started: false }); // tick() reports once it is there
      current.video.currentTime = placed.position;
      this.events.onNotice(laterNotice(t, placed.wall, this.clock));
      if (!this.paused) this.start(current.video);
      return;
    }
    this.events.onNotice(null);
    let windows: WindowsAnswer;
    try {
      windows = await api<WindowsAnswer>("GET", `${cameraPath(this.camera)}/vod/windows`, { query: { start: t, limit: 2 } });
    } catch (exc) {
      if (serial === this.serial) this.events.onNotice(`cannot play: ${(exc as Error).message}`);
      return;
    }
    if (serial !== this.serial) return;
    const window = windowFor(windows.windows, t);
    if (!window) {
      this.events.onNotice(`no footage from ${momentLabel(t, this.clock)} on`);
      this.events.onEnd();
      return;
    }
    for (const slot of this.slots) this.unload(slot);
    await this.load(this.slots[this.active], window, t, serial);
  }

  private async load(slot: Slot, window: VodWindow, startAt: number | null, serial: number): Promise<void> {
    const Hls = await loadHls();
    if (serial !== this.serial) return;
    this.unload(slot);
    (this.debug.windows as string[]).push(window.playlist);
    const hls = new Hls({ autoStartLoad: false, maxBufferLength: 20, backBufferLength: 30, enableWorker: true });
    Object.assign(slot,
      { hls, window, segments: [], complete: false, ready: false, startPosition: 0, started: false, hasSound: null });
    slot.video.playbackRate = this.rate;
    hls.on(Hls.Events.LEVEL_LOADED, (_event, data: LevelLoadedData) => {
      slot.segments = data.details.fragments.map((f) => ({ position: f.start, duration: f.duration, wall: (f.programDateTime ?? 0) / 1000 }));
      slot.complete = !data.details.live;
      if (slot.ready) return;
      slot.ready = true;
      const placed = startAt === null ? null : placeIn(slot.segments, startAt);
      const position = placed?.position ?? 0;
      if (startAt !== null) this.events.onNotice(placed ? laterNotice(startAt, placed.wall, this.clock) : null);
      slot.startPosition = position;
      hls.startLoad(position); // tick() plays once the video is there
    });
    hls.on(Hls.Events.BUFFER_CODECS, (_event, data) => {
      slot.hasSound = recordedHasSound(data);
      if (slot === this.slots[this.active]) this.saySound(slot);
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      (this.debug.errors as string[]).push(`${data.type}/${data.details} fatal=${data.fatal}`);
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls === slot.hls && hls.startLoad(), 1000);
      else if (slot === this.slots[this.active]) this.events.onNotice(`playback failed: ${data.details}`);
    });
    hls.loadSource(window.playlist);
    hls.attachMedia(slot.video);
  }

  private unload(slot: Slot): void {
    slot.hls?.destroy();
    Object.assign(slot,
      { hls: null, window: null, segments: [], complete: false, ready: false, startPosition: 0, started: false, hasSound: null });
    slot.video.removeAttribute("src");
  }

  private tick(): void {
    const slot = this.slots[this.active];
    const video = slot.video;
    // at or past (at 8x, between two ticks) where it was placed; not yet there, it shows the first segment's start
    if (slot.ready && !slot.started && !video.seeking && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA
      && video.currentTime >= slot.startPosition - 0.25) {
      slot.started = true;
      if (!this.paused) this.start(video);
    }
    const date = slot.hls?.playingDate;
    if (!date || !slot.started) return;
    const wall = date.getTime() / 1000;
    slot.video.dataset.playingDate = String(wall);
    this.debug.playingDate = wall;
    if (this.debug.firstPlayingDate === null) Object.assign(this.debug, { firstPlayingDate: wall, startedAtMs: Date.now() });
    this.debug.currentTime = slot.video.currentTime;
    this.events.onTime(wall);
    const last = slot.segments[slot.segments.length - 1];
    const remaining = last ? last.position + last.duration - slot.video.currentTime : Infinity;
    const next = this.slots[1 - this.active];
    if (next.ready && shouldSwap(remaining, wall, next.window!.start)) {
      this.swap();
    } else if (!next.window && Date.now() - this.askedAt > ASK_EVERY_MS
      && shouldPrefetch(remaining, this.rate, slot.complete || Date.now() / 1000 >= slot.window!.end)) {
      void this.prefetch(slot);
    }
  }

  /** Get the window after the active one loading in the other video element. */
  private prefetch(current: Slot): Promise<void> {
    this.askedAt = Date.now();
    return (this.prefetching ??= this.askNext(current).finally(() => {
      this.prefetching = null;
    }));
  }

  private async askNext(current: Slot): Promise<void> {
    const serial = this.serial;
    const from = nextWindowFrom(current.segments, current.window!.end);
    try {
      const answer = await api<WindowsAnswer>("GET", `${cameraPath(this.camera)}/vod/windows`,
        { query: { start: from, limit: 1 } });
      const next = answer.windows[0];
      if (next && serial === this.serial) await this.load(this.slots[1 - this.active], next, null, serial);
    } catch {
      // the next window is asked for again on a later tick
    }
  }

  /** The active playlist ended (ENDLIST, played to its end): on to the next window, or live when there is none. */
  private async ended(): Promise<void> {
    if (!this.slots[1 - this.active].window) await this.prefetch(this.slots[this.active]);
    if (this.slots[1 - this.active].window) this.swap();
    else this.events.onEnd();
  }

  private saySound(slot: Slot): void {
    this.debug.hasSound = slot.hasSound;
    this.events.onHasSound(Boolean(slot.hasSound));
  }

  /** The other element, already loading the next window, plays on. */
  private swap(): void {
    const next = this.slots[1 - this.active];
    const old = this.slots[this.active];
    this.active = 1 - this.active;
    this.applySound(); // the sound goes with the picture: the old element is muted before the new one sounds
    next.video.classList.add("active");
    old.video.classList.remove("active");
    next.video.playbackRate = this.rate;
    if (next.hasSound !== null) this.saySound(next);
    if (!this.paused) this.start(next.video);
    this.debug.swaps = Number(this.debug.swaps) + 1;
    this.unload(old);
  }
}
