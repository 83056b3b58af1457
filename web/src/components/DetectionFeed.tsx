import { useEffect, useState } from "preact/hooks";
import { withQuery } from "../api";
import { formatScore, formatWhen } from "../format";
import type { Detection } from "../types";
import { cameraAt, detectionId, withDetection } from "./feed";
import "./feed.css";

type Connection = "connecting" | "live" | "reconnecting" | "closed";

const CONNECTION_TEXT: Record<Connection, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  closed: "unavailable",
};

/** Detections as they happen (GET /detections/stream, server-sent events with the session cookie), of every
 * camera or of `camera`; each links to the camera view at its moment. */
export function DetectionFeed({ camera, max = 20 }: { camera?: string; max?: number }) {
  const [items, setItems] = useState<Detection[]>([]);
  const [connection, setConnection] = useState<Connection>("connecting");

  useEffect(() => {
    setItems([]);
    setConnection("connecting");
    const source = new EventSource(withQuery("/detections/stream", { camera }));
    source.onopen = () => setConnection("live");
    // The browser reconnects by itself (the API closes streams after a while); CLOSED means it gave up (401, 5xx).
    source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    source.addEventListener("detection", (event) => {
      try {
        const detection = JSON.parse((event as MessageEvent<string>).data) as Detection;
        setItems((list) => withDetection(list, detection, max));
      } catch {
        // an event the page cannot read is skipped; the next one may be fine
      }
    });
    return () => source.close();
  }, [camera, max]);

  return (
    <section class="feed" aria-label="Live detections">
      <header class="feed-head">
        <h2>Detections</h2>
        <span class={`feed-conn feed-${connection}`}>{CONNECTION_TEXT[connection]}</span>
      </header>
      {items.length === 0 ? (
        <p class="feed-empty">{connection === "closed" ? "The detections stream is not available." : "Nothing detected since this page opened."}</p>
      ) : (
        <ol class="feed-list">
          {items.map((d) => (
            <li key={detectionId(d)}>
              <a href={cameraAt(d.camera, d.time)} class="feed-item">
                <span class="feed-label">{d.label}</span>
                <span class="feed-score">{formatScore(d.score)}</span>
                {!camera && <span class="feed-camera">{d.camera}</span>}
                <time class="feed-time" dateTime={new Date(d.time * 1000).toISOString()}>{formatWhen(d.time)}</time>
              </a>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
