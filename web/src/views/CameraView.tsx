import { useLocation, useRoute } from "preact-iso";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { ClipExport } from "../components/ClipExport";
import { DetectionFeed } from "../components/DetectionFeed";
import { LivePlayer } from "../components/LivePlayer";
import { Playback, type PlayRequest } from "../components/Playback";
import { SoundControls, useSound } from "../components/SoundControls";
import { Timeline, marksOf, useTimelineData, type IncidentMark, type MarkAnswer } from "../components/Timeline";
import { RATES, clipAround, nextIncident, previousIncident, type Rate } from "../playback";
import { isoUtc, parseIsoOrUnix } from "../time";
import {
  centredOn, followingNow, momentLabel, spanOf, zoneClock, type Clock, type Interval, type View,
} from "../timeline";
import "../components/camera.css";

const START_SPAN_S = 15 * 60;
const URL_EVERY_MS = 2000; // the address follows what plays, not on every frame
const LIVE_WITHIN_S = 3; // a click this close to now is a click on live

type Mode = { kind: "live" } | { kind: "recorded"; request: PlayRequest };

const now = () => Date.now() / 1000;

/** One camera: live video or recorded footage from any moment, the timeline below it, clips, and its detections
 * as they happen. `?t=<ISO or Unix seconds>` opens it playing that moment; the address follows playback. A camera
 * with sound gets a mute button and a volume slider; the choice is remembered and holds for live and playback. */
export function CameraView() {
  const { params } = useRoute();
  const location = useLocation();
  const camera = params.name;
  const clock = useMemo(() => zoneClock(), []);
  const asked = parseIsoOrUnix(location.query.t);

  const serial = useRef(0);
  const [mode, setMode] = useState<Mode>(() =>
    asked === null ? { kind: "live" } : { kind: "recorded", request: { t: asked, serial: 0 } });
  const [playhead, setPlayhead] = useState<number | null>(asked);
  const [clockNow, setClockNow] = useState(now);
  const [view, setView] = useState<View>(() => (asked === null ? followingNow(now(), START_SPAN_S) : centredOn(asked, START_SPAN_S)));
  const [following, setFollowing] = useState(true);
  const [width, setWidth] = useState(800);
  const [rate, setRate] = useState<Rate>(1);
  const [paused, setPaused] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [selection, setSelection] = useState<Interval | null>(null);
  const urlWritten = useRef(0);
  const sound = useSound(camera);

  const data = useTimelineData(camera, view, width, clockNow);

  useEffect(() => {
    const timer = setInterval(() => setClockNow(now()), 1000);
    return () => clearInterval(timer);
  }, []);

  // The view follows now while live, the playhead while playing (until the user moves the timeline).
  useEffect(() => {
    if (!following) return;
    const span = spanOf(view);
    if (mode.kind === "live") setView(followingNow(clockNow, span));
    else if (playhead !== null && (playhead > view.end - span * 0.05 || playhead < view.start)) {
      setView({ start: playhead - span * 0.2, end: playhead + span * 0.8 });
    }
  }, [clockNow, playhead, following, mode.kind]);

  const playFrom = (t: number) => {
    setFollowing(true);
    setPaused(false);
    if (t >= now() - LIVE_WITHIN_S) {
      goLive();
      return;
    }
    serial.current += 1;
    setPlayhead(t);
    setMode({ kind: "recorded", request: { t, serial: serial.current } });
    writeUrl(t, true);
  };

  const goLive = () => {
    setMode({ kind: "live" });
    setPlayhead(null);
    setNotice(null);
    setFollowing(true);
    setRate(1);
    history.replaceState(history.state, "", location.path);
  };

  const writeUrl = (t: number, force = false) => {
    if (!force && Date.now() - urlWritten.current < URL_EVERY_MS) return;
    urlWritten.current = Date.now();
    history.replaceState(history.state, "", `${location.path}?t=${isoUtc(t)}`);
  };

  const jumpToIncident = async (direction: "previous" | "next") => {
    const at = playhead ?? now();
    const pick = direction === "next" ? nextIncident : previousIncident;
    let found: IncidentMark | null = pick(data.incidents, at);
    // further away than the timeline has loaded: ask the API, looking further each time
    for (const reach of [3600, 86_400, 30 * 86_400]) {
      if (found) break;
      const range = direction === "next" ? { start: at, end: Math.min(now(), at + reach) } : { start: at - reach, end: at };
      if (range.end <= range.start) break;
      const answer = await api<MarkAnswer>("GET", "/search",
        { query: { camera, ...range, limit: direction === "next" ? 1000 : 1 } }).catch((): MarkAnswer => ({ incidents: [] }));
      found = pick(marksOf(answer), at);
    }
    if (found) playFrom(found.start);
    else setNotice(`no ${direction} incident`);
  };

  const live = mode.kind === "live";
  return (
    <section class="cv">
      <header class="cv-head">
        <a href="/" class="cv-back">← Cameras</a>
        <h1>{camera}</h1>
        <span class={`cv-state${live ? " live" : ""}`} data-testid="camera-state">
          {live ? "Live" : playhead !== null ? `${paused ? "Paused" : "Playing"} ${momentLabel(playhead, clock)}` : "Loading…"}
        </span>
        {notice && <span class="cv-notice" role="status">{notice}</span>}
      </header>
      <div class="cv-main">
        <div class="cv-player">
          {live ? (
            <LivePlayer camera={camera} sound={sound.shownSound} events={sound} />
          ) : (
            <Playback camera={camera} request={mode.request} rate={rate} paused={paused} sound={sound.shownSound}
              clock={clock} events={{
              onTime: (wall) => {
                setPlayhead(wall);
                writeUrl(wall);
              },
              onNotice: setNotice,
              onEnd: goLive,
              onHasSound: sound.onHasSound,
              onRefused: sound.onRefused,
            }} />
          )}
          <div class="cv-controls">
            <button type="button" onClick={() => jumpToIncident("previous")} title="previous incident">‹ Incident</button>
            <button type="button" onClick={() => setPaused(!paused)} aria-label={paused ? "play" : "pause"} disabled={live}>
              {paused ? "▶" : "❚❚"}
            </button>
            <button type="button" onClick={() => jumpToIncident("next")} title="next incident">Incident ›</button>
            <span class="cv-rates" role="group" aria-label="speed">
              {RATES.map((r) => (
                <button type="button" class={r === rate && !live ? "on" : ""} disabled={live} onClick={() => setRate(r)}>{r}x</button>
              ))}
            </span>
            {sound.hasSound && <SoundControls state={sound} />}
            <button type="button" class={`cv-live${live ? " on" : ""}`} onClick={goLive}>● Live</button>
          </div>
          <Timeline view={view} now={clockNow} playhead={playhead} selection={selection} data={data} clock={clock}
            onView={(next) => {
              setFollowing(false);
              setView(next);
            }}
            onSeek={playFrom}
            onSelect={setSelection}
            onWidth={setWidth} />
          <ClipExport camera={camera} selection={selection} here={playhead ?? clockNow} clock={clock} onSelection={setSelection} />
          {data.incidents.length > 0 && (
            <IncidentList incidents={data.incidents} view={view} clock={clock} onPlay={playFrom}
              onClip={(incident) => setSelection(clipAround(incident))} />
          )}
        </div>
        <aside class="cv-side" aria-label="detections">
          <DetectionFeed camera={camera} />
        </aside>
      </div>
    </section>
  );
}

/** The incidents on the visible part of the timeline, newest first: play one, or make a clip of it. */
function IncidentList({ incidents, view, clock, onPlay, onClip }: {
  incidents: IncidentMark[]; view: View; clock: Clock;
  onPlay: (t: number) => void; onClip: (incident: IncidentMark) => void;
}) {
  const shown = incidents.filter((i) => i.end >= view.start && i.start <= view.end).slice(0, 8);
  if (!shown.length) return null;
  return (
    <ul class="cv-incidents">
      {shown.map((incident) => (
        <li>
          <button type="button" class="link" onClick={() => onPlay(incident.start)}>
            {incident.label} {Math.round(incident.max_score * 100)} % · {momentLabel(incident.start, clock)}
          </button>
          <button type="button" class="link" onClick={() => onClip(incident)}>clip</button>
        </li>
      ))}
    </ul>
  );
}
