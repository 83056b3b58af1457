"""The segmenter: per camera, packets from JetStream -> fragmented MP4 chunks (remuxed, never transcoded) in S3,
each announced on `footage.<cam>`, with explicit gaps; a message is acked only once what it belongs
to is stored and announced.

Modules:
- `settings`: SegmenterSettings (`[segmenter]` in spectare.toml, `SPECTARE_SEGMENTER__*`).
- `chunker`: the cutting rules, pure (messages + ticks in, CloseChunk / AnnounceGap out).
- `remux`: a chunk plan -> fragmented MP4 bytes with PyAV (template stream, +bitexact, deterministic): one
  standalone file per chunk (`ftyp`, an empty `moov`, one `moof`+`mdat` per GOP) that plays on its own and is
  also an HLS/MSE segment (`spectare.media.fmp4`). Chunks stored before are plain MP4 (moov at the end).
- `keys`: S3 keys and the `Nats-Msg-Id` of footage events.
- `consumer`: the durable consumer (recreated from its ack floor at start), where the stored footage
  ends, and the StreamInfo of a session joined midway.
- `sink`: per camera, in order: remux, upload (retried), announce (retried), ack.
- `service`: one pipeline (fetch loop + sink) per camera under a `segmenter` lease.

Crash safety: AckPolicy.ALL, and a chunk's ack is the last message before the event that closed it,
sent (and confirmed) only after the upload and the Segment event. A kill at any point leaves every
un-stored packet un-acked; at start the consumer is recreated from its ack floor, so they are
delivered again at once. What was stored but not acked is recognised from the footage stream's last
event (its session and last seq, or its gap) and skipped; a re-stored chunk would anyway get the
same key, the same bytes and the same Msg-Id.
"""
