"""Golden encoded messages: what Spectare wrote, byte for byte, for every message kind and version.

Layout (this folder): `<kind>-v<N>.msgpack` is one message of that kind and version as the encoder of that release
wrote it (`<kind>-v<N>-<variant>.msgpack` for more of the same kind: optional fields unset, a legacy form), and
`<same name>.json` beside it holds what it must decode to:

    {"kind": ..., "v": ..., "reencodes": true, "note": "...", "value": {field: value, ...}}

`value` is the decoded message's `model_dump()` in JSON (bytes as `{"$bytes": "<hex>"}`, tuples as lists);
`reencodes` says whether today's encoder must write these exact bytes from that value (false for bytes an older
release wrote, e.g. a Detection from before its `index` field). tests/test_golden.py checks every file.

The files are generated once and committed; they are what streams and KV buckets hold, so they are never
regenerated to make a test pass. A new kind, variant or version (after bumping a message's VERSION) adds files:
add its case below and run

    .venv/bin/python -m tests.golden.make

which writes the files that are missing and leaves every existing one alone (delete one first, deliberately, to
write it again).
"""

import json
import sys
from pathlib import Path
from typing import Any

import msgpack

GOLDEN = Path(__file__).resolve().parent
NAME = r"(?P<kind>[a-z][a-z_]*)-v(?P<v>[0-9]+)(?:-(?P<variant>[a-z0-9][a-z0-9-]*))?"


def to_json(value: Any) -> Any:
    """A message's python dump as JSON values: bytes as {"$bytes": hex}, tuples as lists."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any) -> Any:
    """The inverse of to_json, with sequences as tuples (as msgpack decoding gives them to the schemas)."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(from_json(v) for v in value)
    return value


def cases() -> list[tuple[str, bytes, Any, str]]:
    """(file name without suffix, encoded bytes, the message they decode to, note) of every golden message."""
    from spectare.schemas import (
        ApiSession,
        ApiToken,
        AudioTrack,
        CameraConfig,
        CameraStatus,
        Detection,
        Gap,
        Keyframe,
        MotionState,
        ObjectEvent,
        Packet,
        PacketGroup,
        Segment,
        StreamInfo,
        VideoTrack,
    )
    from spectare.schemas import queries as q
    from spectare.schemas.tracks import TrackedObject, TrackerState

    t0 = 1795845752.345  # 2026-11-28T00:02:32.345Z
    video = VideoTrack(codec="h264", width=1920, height=1080, time_base=(1, 90000),
                       extradata=b"\x00\x00\x00\x01\x67\x64\x00\x28", fps=15.0)
    packets = tuple(Packet(camera="porch", session="1a-0", seq=30 + i, pts=i * 6000, dts=i * 6000, duration=6000,
                           keyframe=i == 0, wall_time=t0 + i / 15, data=bytes([0, 0, 1, 0x65 if i == 0 else 0x41, i]))
                    for i in range(3))
    detection = Detection(camera="porch", time=t0, label="traffic light", class_id=9, score=0.875,
                          box=(0.125, 0.25, 0.5, 0.75), model="yolov4-tiny", session="1a-0", seq=30, index=2,
                          snapshot_key="snapshots/porch/2026/11/28/00/20261128T000232.345Z-1a-0-30.jpg")
    chunk = q.ChunkRef(camera="porch", key="footage/porch/2026/11/28/00/20261128T000232.345Z-1a-0-30.mp4",
                       start=t0, end=t0 + 10, bytes=1234567, url="http://127.0.0.1:8333/spectare/footage/x?sig=abc")
    gap_ref = q.GapRef(camera="porch", start=t0 - 60, end=t0, reason="camera unreachable")
    messages: list[tuple[str, Any, str]] = [
        ("stream_info-v1", StreamInfo(camera="porch", session="1a-0", started_at=t0, video=video,
                                      audio=AudioTrack(codec="aac", sample_rate=48000, channels=2,
                                                       time_base=(1, 48000), extradata=b"\x11\x90")),
         "with an audio track"),
        ("stream_info-v1-video-only", StreamInfo(camera="porch", session="1a-0", started_at=t0,
                                                 video=video.model_copy(update={"fps": None})), "no audio, no fps"),
        ("packet-v2", Packet(camera="porch", session="1a-0", seq=0, pts=None, dts=None, keyframe=True, wall_time=t0,
                             data=b"\x00\x00\x00\x01\x65\x88"), "a single packet, RTSP's first (no pts)"),
        ("packet-v2-audio", Packet(camera="porch", session="1a-0", seq=9, track="audio", pts=-1024, dts=-1024,
                                   duration=1024, keyframe=False, wall_time=t0 + 0.5, data=bytes(range(16)),
                                   sizes=(7, 9)), "two AAC access units"),
        ("packet_group-v2", PacketGroup(camera="porch", session="1a-0", packets=(*packets, Packet(
            camera="porch", session="1a-0", seq=33, track="audio", pts=4096, dts=4096, duration=1024, keyframe=False,
            wall_time=t0 + 0.2, data=bytes(range(10)), sizes=(4, 3, 3)))),
         "inner packets as plain maps, the last an audio run"),
        ("keyframe-v1", Keyframe(camera="porch", session="1a-0", seq=30, wall_time=t0, codec="h264", width=1920,
                                 height=1080, extradata=video.extradata, data=b"\x00\x00\x00\x01\x65\x88\x84"), ""),
        ("segment-v1", Segment(camera="porch", bucket="spectare", key=chunk.key, session="1a-0", first_seq=30,
                               last_seq=179, start=t0, end=t0 + 10, frames=150, bytes=1234567, codec="h264",
                               width=1920, height=1080), ""),
        ("gap-v1", Gap(camera="porch", start=t0 - 60, end=t0, reason="camera unreachable", session="1a-0"),
         "closed"),
        ("gap-v1-open", Gap(camera="porch", start=t0, reason="reconnecting"), "open: end None, no session"),
        ("detection-v1", detection, "with its index (and a snapshot)"),
        ("object_event-v1", ObjectEvent(type="update", camera="porch", object_id="1a-0-7", seq=2, label="car",
                                        time=t0 + 40, first_seen=t0, last_seen=t0 + 40, top_score=0.91,
                                        box=(0.125, 0.25, 0.5, 0.75), snapshot_key=detection.snapshot_key,
                                        zones=("drive",), entered_zones=("street", "drive"), stationary=True,
                                        changes=("zone_entered", "stationary"), session="1a-0", keyframe_seq=630),
         "an update: parked on the drive"),
        ("object_event-v1-new", ObjectEvent(type="new", camera="porch", object_id="1a-0-8", seq=0, label="person",
                                            time=t0, first_seen=t0 - 2, last_seen=t0, top_score=0.7,
                                            box=(0.5, 0.25, 0.625, 0.75), session="1a-0", keyframe_seq=30),
         "a new object: no snapshot yet, no zones"),
        ("motion_state-v1", MotionState(camera="porch", session="1a-0", seq=30, wall_time=t0, width=4, height=2,
                                        pixels=bytes(range(0, 256, 32))), "value of the `motion` KV bucket"),
        ("camera-v1", CameraConfig(name="porch", url="rtsp://admin:secret@192.0.2.10:554/stream1",
                                   friendly_name="Porch", detect=True, segment_seconds=6, labels=("person", "car"),
                                   min_score=0.4, motion_gate=False, motion_threshold=0.01, keep_days=7.0,
                                   keep_event_days=30.0, max_gb=50.5, created_at=t0, updated_at=t0 + 1),
         "CameraConfig, value of the `cameras` KV bucket, every field set"),
        ("camera-v1-defaults", CameraConfig(name="gate", url="rtsp://192.0.2.11/"), "CameraConfig, defaults"),
        ("camera-v1-audio-off", CameraConfig(name="yard", url="rtsp://192.0.2.13/", audio="off"),
         "CameraConfig recording video only (audio is written only when not the default, copy)"),
        ("camera-v1-zones", CameraConfig.create(
            name="drive", url="rtsp://192.0.2.12/", created_at=t0, updated_at=t0,
            zones=({"name": "drive", "points": ((0.1, 0.5), (0.4, 0.5), (0.4, 0.9))},),
            masks=({"name": "tree", "points": ((0.8, 0.0), (1.0, 0.0), (1.0, 0.3)), "motion": True},),
            required_zones=("drive",), min_hits=3, end_after_s=20.0, stationary_after_s=60.0),
         "CameraConfig with zones, masks and tracking settings (written only when set)"),
        ("tracker_state-v1", TrackerState(
            camera="porch", time=t0 + 40, session="1a-0", seq=630,
            objects=(TrackedObject(object_id="1795845752345-0", label="car", first_seen=t0, last_seen=t0 + 40, hits=9,
                                   announced=True, next_seq=3, top_score=0.91, snapshot_score=0.91,
                                   snapshot_key=detection.snapshot_key, box=(0.125, 0.25, 0.5, 0.75),
                                   velocity=(0.0, 0.0), zones=("drive",), entered_zones=("street", "drive"),
                                   stationary=True, still_since=t0 + 5, anchor=(0.3125, 0.5), session="1a-0",
                                   keyframe_seq=630),),
            outbox=(ObjectEvent(type="update", camera="porch", object_id="1795845752345-0", seq=2, label="car",
                                time=t0 + 40, first_seen=t0, last_seen=t0 + 40, top_score=0.91,
                                box=(0.125, 0.25, 0.5, 0.75), zones=("drive",), entered_zones=("street", "drive"),
                                stationary=True, changes=("stationary",), session="1a-0", keyframe_seq=630),)),
         "value of the `tracks` KV bucket: a parked car and its unsent update"),
        ("camera_status-v1", CameraStatus(camera="porch", worker="ingest-host-4242-a1b2c3", state="retrying",
                                          since=t0 - 30, attempts=7, error_kind="refused",
                                          error="cannot open rtsp://admin:***@192.0.2.10:554/stream1: connection "
                                                "refused", updated_at=t0),
         "value of the `camera_status` KV bucket, failing"),
        ("camera_status-v1-streaming", CameraStatus(camera="porch", worker="ingest-host-4242-a1b2c3",
                                                    state="streaming", since=t0, session="1a-0", updated_at=t0 + 30),
         "streaming: no error, attempts 0"),
        ("api_token-v1", ApiToken(id="0123456789ab", name="dashboard", scope="read", sha256="ab" * 32,
                                  created_at=t0), "value of the `tokens` KV bucket"),
        ("api_session-v1", ApiSession(id="0123456789abcdef", token_id="0123456789ab", scope="read",
                                      sha256="cd" * 32, created_at=t0, expires_at=t0 + 43_200),
         "value of the `sessions` KV bucket"),
        ("search_request-v1", q.SearchRequest(camera="porch", label="person", start=t0 - 3600, end=t0,
                                              min_score=0.5, limit=20), ""),
        ("search_request-v1-everywhere", q.SearchRequest(start=t0 - 3600, end=t0), "no camera, label, limit"),
        ("search_response-v1", q.SearchResponse(
            incidents=(q.Incident(camera="porch", label="person", start=t0, end=t0 + 4, detections=3, max_score=0.9,
                                  snapshot_key=detection.snapshot_key, snapshot_url="http://127.0.0.1:8333/s?sig=1",
                                  chunks=(chunk,)),),
            total=1, merge_gap_s=30.0), ""),
        ("event_search_request-v1", q.EventSearchRequest(camera="porch", label="car", zone="drive", start=t0 - 3600,
                                                         end=t0, min_score=0.5, limit=20, incidents=True), ""),
        ("event_search_request-v1-everywhere", q.EventSearchRequest(start=t0 - 3600, end=t0), "no filters"),
        ("event_search_response-v1", q.EventSearchResponse(
            events=(q.EventRef(camera="porch", object_id="1a-0-7", label="car", start=t0, end=t0 + 40, max_score=0.91,
                               snapshot_key=detection.snapshot_key, snapshot_url="http://127.0.0.1:8333/s?sig=2",
                               chunks=(chunk,), more_chunks=True, zones=("drive",), entered_zones=("street", "drive"),
                               stationary=True, ended=False),),
            total=1, incidents=(q.Incident(camera="gate", label="person", start=t0, end=t0 + 4, detections=3,
                                           max_score=0.9, snapshot_key=None, snapshot_url=None, chunks=()),),
            incidents_total=1, merge_gap_s=30.0), "an event and an incident of a camera without events"),
        ("footage_at_request-v1", q.FootageAtRequest(camera="porch", time=t0 + 2), ""),
        ("footage_at_response-v1", q.FootageAtResponse(camera="porch", time=t0 + 2, found="chunk", chunk=chunk,
                                                       offset=2.0), "found a chunk"),
        ("footage_at_response-v1-gap", q.FootageAtResponse(camera="porch", time=t0 - 30, found="gap", gap=gap_ref),
         "inside a gap"),
        ("footage_at_response-v1-nothing", q.FootageAtResponse(camera="porch", time=t0 - 86400, found="nothing",
                                                               next_start=t0 - 60), ""),
        ("chunks_request-v1", q.ChunksRequest(camera="porch", start=t0 - 60, end=t0 + 10, limit=100), ""),
        ("chunks_response-v1", q.ChunksResponse(chunks=(chunk,), gaps=(gap_ref,), truncated=False), ""),
        ("sql_request-v1", q.SqlRequest(sql="SELECT label, count(*) FROM detections GROUP BY label", max_rows=10),
         ""),
        ("sql_response-v1", q.SqlResponse(columns=("label", "n", "share", "note", "ok"),
                                          types=("VARCHAR", "BIGINT", "DOUBLE", "VARCHAR", "BOOLEAN"),
                                          rows=(("person", 12, 0.75, None, True), ("car", 4, 0.25, "x", False)),
                                          truncated=False, elapsed_s=0.0125), ""),
        ("status_request-v1", q.StatusRequest(), "no fields"),
        ("status_response-v1", q.StatusResponse(
            database="/var/lib/spectare/index.duckdb", tables={"chunks": 10, "gaps": 1, "detections": 3},
            streams=(q.StreamProgress(stream="FOOTAGE", last_seq=11, messages=11, garbage=0),
                     q.StreamProgress(stream="DETECTIONS", last_seq=4, messages=4, garbage=1)),
            latest_chunk_end=t0 + 10, latest_detection=None), ""),
        ("retention_request-v1", q.RetentionRequest(dry_run=True), ""),
        ("retention_response-v1", q.RetentionResponse(
            dry_run=False, chunks=3, bytes=3_000_000, detections=5, snapshots=2, resumed=0,
            cameras=(q.CameraRetention(camera="porch", chunks=3, bytes=3_000_000, detections=5),), seconds=0.5), ""),
        ("export_request-v1", q.ExportRequest(), "no fields"),
        ("export_response-v1", q.ExportResponse(prefix="export", partitions=2, rows=40, files=2, bytes=8192,
                                                seconds=0.25), ""),
    ]
    out = [(name, message.encode(), message, note) for name, message, note in messages]
    # A Detection as detectors before the `index` field wrote it: the same map without the key (msgpack keeps the
    # map's order, so these are the old encoder's bytes). Today's schemas decode it with index None.
    legacy = msgpack.unpackb(detection.encode(), raw=False)
    del legacy["index"]
    old_bytes = msgpack.packb(legacy, use_bin_type=True)
    out.append(("detection-v1-before-index", old_bytes, Detection.decode(old_bytes),
                "as written before Detection.index existed (index only in the Msg-Id): decodes with index None"))
    return out


def write_missing(folder: Path = GOLDEN) -> list[Path]:
    written = []
    for name, data, message, note in cases():
        binary, sidecar = folder / f"{name}.msgpack", folder / f"{name}.json"
        if binary.exists() or sidecar.exists():
            continue
        envelope = msgpack.unpackb(data, raw=False)
        expected = {"kind": envelope["kind"], "v": envelope["v"], "reencodes": data == message.encode(), "note": note,
                    "value": to_json(message.model_dump(mode="python"))}
        binary.write_bytes(data)
        sidecar.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
        written += [binary, sidecar]
    return written


if __name__ == "__main__":
    for path in write_missing():
        print(f"wrote {path.relative_to(GOLDEN.parent.parent)}")
    sys.exit(0)
