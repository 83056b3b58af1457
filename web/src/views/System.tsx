import { api } from "../api";
import { UNKNOWN, formatAge, formatBitrate, formatBytes, formatFps, formatWhen } from "../format";
import type { Check, Stats } from "../types";
import { usePoll } from "../usePoll";
import { STATE_LABELS } from "./gridTiles";
import "./admin.css";

/** What /stats knows, refreshed every 5 s: health, cameras, consumer lag, storage and scaling. */
export function System() {
  const stats = usePoll((signal) => api<Stats>("GET", "/stats", { signal }), 5_000);
  const s = stats.data;
  return (
    <div class="system-page">
      <div class="toolbar">
        <h1>System</h1>
        {s && <span class="muted measured" role="status">Measured at {formatWhen(s.time)}; refreshes every 5 s</span>}
      </div>
      {stats.error && <p class="error-box" role="alert">{s ? "Not current: " : ""}{stats.error}</p>}
      {!s && !stats.error && <p class="muted">Loading…</p>}
      {s && (
        <>
          <section class="health" aria-label="Health">
            <HealthCard name="NATS" check={s.health.nats} />
            <HealthCard name="S3" check={s.health.s3} />
            <HealthCard name="Indexer" check={s.health.indexer} />
          </section>

          <section class="panel">
            <h2>Cameras <span class="muted small">{s.cameras.recording} of {s.cameras.total} recording</span></h2>
            {s.per_camera.length === 0 ? <p class="muted">No cameras registered.</p> : (
              <div class="table-scroll">
                <table class="table stack">
                  <thead>
                    <tr><th>Camera</th><th>State</th><th class="num">fps</th><th class="num">Bitrate</th>
                        <th class="num">Last packet</th><th class="num">Chunks (1 h)</th><th>Ingest worker</th></tr>
                  </thead>
                  <tbody>
                    {s.per_camera.map((c) => (
                      <tr data-camera={c.name}>
                        <td><a href={`/cameras/${encodeURIComponent(c.name)}`} class="strong">{c.name}</a></td>
                        <td data-label="State">
                          <span class={`badge badge-${c.state}`}>{STATE_LABELS[c.state] ?? c.state}</span>
                          {c.ingest?.error && <div class="error-text small">{c.ingest.error}</div>}
                        </td>
                        <td class="num" data-label="fps">{formatFps(c.fps)}</td>
                        <td class="num" data-label="Bitrate">{formatBitrate(c.bitrate_bps)}</td>
                        <td class="num" data-label="Last packet">{c.last_packet_age_s === null ? UNKNOWN : `${formatAge(c.last_packet_age_s)} ago`}</td>
                        <td class="num" data-label="Chunks (1 h)">{c.chunks_last_hour ?? UNKNOWN}</td>
                        <td class="mono small" data-label="Ingest worker">{c.ingest_worker ?? <span class="muted">none</span>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>

          <div class="two-columns">
            <section class="panel">
              <h2>Consumer lag</h2>
              {s.consumers.length === 0 ? <p class="muted">No consumers answered.</p> : (
                <div class="table-scroll">
                  <table class="table stack">
                    <thead><tr><th>Consumer</th><th class="num">Pending</th><th class="num">Unacked</th><th class="num">Lag</th></tr></thead>
                    <tbody>
                      {s.consumers.map((c) => (
                        <tr><td>{c.consumer} <span class="muted small">{c.stream}</span></td>
                            <td class="num" data-label="Pending">{c.pending}</td><td class="num" data-label="Unacked">{c.ack_pending}</td>
                            <td class={`num ${c.lag > 100 ? "warn-text" : ""}`} data-label="Lag">{c.lag}</td></tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </section>
            <section class="panel">
              <h2>Storage</h2>
              {s.storage.source === "unavailable" ? <p class="muted">The indexer does not answer: storage unknown.</p> : (
                <dl class="facts">
                  <dt>Footage</dt><dd>{formatBytes(s.storage.footage_bytes)}</dd>
                  <dt>Chunks</dt><dd>{s.storage.footage_chunks ?? UNKNOWN}</dd>
                  <dt>Snapshots</dt><dd>{s.storage.snapshots ?? UNKNOWN}</dd>
                </dl>
              )}
              <h2>Scaling</h2>
              <dl class="facts">
                <dt>Cameras</dt><dd>{s.scaling.cameras}</dd>
                <dt>Per ingest worker</dt><dd>at most {s.scaling.max_cameras_per_worker}</dd>
                <dt>Ingest workers</dt>
                <dd class={s.scaling.ingest_workers_live < s.scaling.ingest_workers_needed ? "warn-text" : ""}>
                  {s.scaling.ingest_workers_live} live, {s.scaling.ingest_workers_needed} needed
                </dd>
              </dl>
            </section>
          </div>
        </>
      )}
    </div>
  );
}

function HealthCard({ name, check }: { name: string; check: Check }) {
  return (
    <div class={`health-card ${check.ok ? "ok" : "bad"}`}>
      <span class="health-dot" aria-hidden="true" />
      <div>
        <div class="health-name">{name} <span class="sr-only">{check.ok ? "ok" : "failing"}</span></div>
        <div class="health-detail">{check.detail}</div>
      </div>
    </div>
  );
}
