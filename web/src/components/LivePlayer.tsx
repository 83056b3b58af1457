import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, cameraPath } from "../api";
import { closeOutcome, followLiveEdge, playable, reconnectDelayS, type Range } from "../live";
import { liveHasSound, type ElementSound } from "../sound";
import { debugState } from "./debug";
import { applySound, playAllowingSound } from "./SoundControls";

/** What the viewer sees besides the picture. */
type LiveState =
  | { kind: "connecting" }
  | { kind: "playing" }
  | { kind: "stills"; codec: string }
  | { kind: "interrupted"; message: string; retrying: boolean };

/** What the live player tells the view about sound: whether the stream has it, and that the browser refused to
 * play it (the video then plays muted). */
export interface LiveSoundEvents {
  onHasSound: (has: boolean) => void;
  onRefused: () => void;
}

/** Live video over `WS /cameras/byname/<name>/live` in MediaSource (protocol in services/api/live.py): a `stream`
 * message opens a new MediaSource with its mime, then the init segment and fragments are appended in order; the
 * player stays at the live edge and reconnects with back-off. A codec the browser cannot decode (H.265 in
 * Chromium) shows the snapshot, refreshed every second, instead. The video plays at `sound` (muted unless the
 * viewer unmuted). */
export function LivePlayer({ camera, sound, events }: { camera: string; sound: ElementSound; events: LiveSoundEvents }) {
  const video = useRef<HTMLVideoElement>(null);
  const connection = useRef<LiveConnection | null>(null);
  const latest = useRef(events);
  latest.current = events;
  const [state, setState] = useState<LiveState>({ kind: "connecting" });

  useEffect(() => {
    const made = (connection.current = new LiveConnection(video.current!, camera, setState, {
      onHasSound: (has) => latest.current.onHasSound(has),
      onRefused: () => latest.current.onRefused(),
    }));
    made.setSound(sound);
    made.start();
    return () => made.stop();
  }, [camera]);
  // a layout effect: the element is (un)muted in the same commit as the speaker button's label, never after it
  useLayoutEffect(() => connection.current?.setSound(sound), [sound.muted, sound.volume]);

  const snapshot = `${cameraPath(camera)}/snapshot.jpg`;
  return (
    <div class="cv-stage">
      {state.kind === "stills" ? (
        <Stills src={snapshot} camera={camera} />
      ) : (
        <video ref={video} class="cv-video live" muted autoplay playsInline poster={snapshot} aria-label={`${camera} live`} />
      )}
      <div class="cv-badge">
        <span class={`cv-dot ${state.kind === "playing" ? "on" : ""}`} /> LIVE
      </div>
      {state.kind === "connecting" && <p class="cv-overlay">Connecting…</p>}
      {state.kind === "interrupted" && <p class="cv-overlay">{state.message}</p>}
      {state.kind === "stills" && (
        <p class="cv-overlay cv-note">
          This browser cannot decode {state.codec === "hevc" ? "H.265" : state.codec} live video: showing a still every
          second. Recorded footage plays in browsers that decode it (Safari).
        </p>
      )}
    </div>
  );
}

/** The snapshot, reloaded about every second; the next picture replaces the shown one once it has loaded. */
function Stills({ src, camera }: { src: string; camera: string }) {
  const [shown, setShown] = useState(src);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout>;
    const next = () => {
      const picture = new Image();
      const url = `${src}?at=${Date.now()}`;
      const again = () => {
        if (!stopped) timer = setTimeout(next, 1000);
      };
      picture.onload = () => {
        if (!stopped) setShown(url);
        again();
      };
      picture.onerror = again;
      picture.src = url;
    };
    timer = setTimeout(next, 1000);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [src]);
  return <img class="cv-video" src={shown} alt={`${camera}, latest still`} />;
}

interface StreamMessage {
  type: "stream";
  mime: string;
  codec: string;
  wall_time: number;
  audio?: { codec: string; sample_rate: number; channels: number };
}

class LiveConnection {
  private socket: WebSocket | null = null;
  private source: MediaSource | null = null;
  private buffer: SourceBuffer | null = null;
  private queue: ArrayBuffer[] = [];
  private attempt = 0;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private playing = false;
  private readonly debug = debugState("live");

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly camera: string,
    private readonly show: (state: LiveState) => void,
    private readonly sound: LiveSoundEvents,
  ) {
    Object.assign(this.debug, { streams: 0, skipped: 0, appended: 0, closed: null, errors: [], audio: null });
    video.addEventListener("error", () => {
      if (this.source) this.failed(`video: ${video.error?.message ?? "decode error"}`);
    });
  }

  start(): void {
    const url = new URL(`${cameraPath(this.camera)}/live`, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = (this.socket = new WebSocket(url));
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => this.received(event.data as string | ArrayBuffer);
    socket.onclose = (event) => this.closed(socket, event.code, event.reason);
  }

  /** Sound on (or off) now; a play() refused with sound plays muted and says so. */
  setSound(sound: ElementSound): void {
    applySound(this.video, sound);
    if (!sound.muted && this.playing) void playAllowingSound(this.video, this.sound.onRefused);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.socket?.close(1000);
    this.detach();
  }

  private received(data: string | ArrayBuffer): void {
    if (typeof data !== "string") {
      this.queue.push(data);
      this.pump();
      return;
    }
    let message: { type?: string };
    try {
      message = JSON.parse(data);
    } catch {
      return; // a notice this page cannot read changes nothing about the video
    }
    if (message.type === "skipped") this.debug.skipped = Number(this.debug.skipped) + 1;
    if (message.type !== "stream") return;
    const stream = message as StreamMessage;
    this.debug.streams = Number(this.debug.streams) + 1;
    if (!playable(stream.mime, (mime) => MediaSource.isTypeSupported(mime))) {
      this.stopped = true; // nothing this browser can show comes on the socket
      this.socket?.close(1000);
      this.detach();
      this.sound.onHasSound(false);
      this.show({ kind: "stills", codec: stream.codec });
      return;
    }
    this.debug.audio = stream.audio ?? null;
    this.sound.onHasSound(liveHasSound(stream));
    this.open(stream.mime);
  }

  /** A new timeline (first connect, reconnect, camera reconnect): a fresh MediaSource, fed from its init segment. */
  private open(mime: string): void {
    this.detach();
    this.queue = [];
    const source = (this.source = new MediaSource());
    this.video.src = URL.createObjectURL(source);
    source.addEventListener("sourceopen", () => {
      if (source !== this.source) return;
      URL.revokeObjectURL(this.video.src);
      const buffer = (this.buffer = source.addSourceBuffer(mime));
      buffer.mode = "segments";
      buffer.addEventListener("updateend", () => this.appended());
      this.pump();
    }, { once: true });
  }

  private detach(): void {
    this.buffer = null;
    if (this.source) {
      this.source = null;
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  private pump(): void {
    const buffer = this.buffer;
    if (!buffer || buffer.updating || !this.queue.length) return;
    try {
      buffer.appendBuffer(this.queue.shift()!);
    } catch (exc) {
      this.failed(`appendBuffer: ${exc}`); // quota or a closed source: start over on a fresh connection
    }
  }

  private appended(): void {
    const buffer = this.buffer;
    if (!buffer) return;
    this.debug.appended = Number(this.debug.appended) + 1;
    const ranges: Range[] = [];
    for (let n = 0; n < this.video.buffered.length; n += 1) {
      ranges.push({ start: this.video.buffered.start(n), end: this.video.buffered.end(n) });
    }
    const action = followLiveEdge(ranges, this.video.currentTime, this.video.paused);
    if (action.seek !== null) this.video.currentTime = action.seek;
    // autoplay refused with sound: muted; refused even muted (a browser that plays nothing unasked): the poster stays
    if (action.play) void playAllowingSound(this.video, this.sound.onRefused);
    if (ranges.length && !this.playing) {
      this.playing = true;
      this.attempt = 0;
      this.show({ kind: "playing" });
    }
    if (action.removeBefore !== null && !buffer.updating) {
      buffer.remove(0, action.removeBefore); // its updateend pumps the queue on
      return;
    }
    this.pump();
  }

  private failed(error: string): void {
    (this.debug.errors as string[]).push(error);
    this.socket?.close(4000, "player error");
  }

  private closed(socket: WebSocket, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.debug.closed = [code, reason];
    this.playing = false;
    if (this.stopped) return;
    const outcome = closeOutcome(code, reason);
    if (outcome.login) void api("GET", "/tokens/me").catch(() => undefined); // a 401 there takes the page to login
    this.show({ kind: "interrupted", message: outcome.message, retrying: outcome.retry });
    if (!outcome.retry) return;
    this.retry = setTimeout(() => this.start(), reconnectDelayS(this.attempt) * 1000);
    this.attempt += 1;
  }
}
