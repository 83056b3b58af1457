"""The segmenter: per camera, packets from JetStream -> MP4 chunks (remuxed, never transcoded) in S3,
each announced on `footage.<cam>`, with explicit gaps; acked only once stored.

Modules: `chunker` (pure cutting rules), `remux` (PyAV, chunk plan -> MP4 bytes), `keys` (S3 keys
and Msg-Ids), `consumer` (durable consumer, footage tail, StreamInfo lookup), `sink` (in-order
remux/upload/announce/ack with retries), `service` (per-camera pipelines under leases), `settings`.
"""
