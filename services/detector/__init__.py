"""The detector service (`python -m spectare.detector`): keyframes in, detections, snapshot JPEGs and
tracked-object events out.

Modules:
- `service`: the process and its loop: the shared durable consumer `detector` on KEYFRAMES, fetching
  batches, following the camera registry, keeping un-settled keyframes alive, consumer lag, totals.
- `pipeline`: one batch of keyframe messages: decode, skip cameras that are unregistered or have detection
  off, motion gate, model, then per keyframe the snapshot to S3, its detections published, and its ack.
- `gate` (pure) and `motion` (the `motion` KV bucket): the motion gate's decisions and its shared state.
- `models`: the object detection backends behind one interface (OpenCV DNN YOLO, Ultralytics).
- `policy` (pure): per-camera labels, scores, thresholds, masks and tracking rules, and the detections' Msg-Ids.
- `tracker` (pure) and `tracking` (the `tracks` KV bucket, events on `events.<cam>.<label>`, the end timer): one
  tracker state per camera shared by every replica, and the new/update/end events of each tracked object.
- `snapshot`: the JPEG with the reported boxes drawn.
- `settings`: `[detector]` settings.

Decoding a keyframe into a picture is `spectare.media.frames` (the API's snapshots use it too); consuming,
settling and keeping messages alive is `spectare.core.consumer`.
"""
