"""Media code more than one part of Spectare needs, on PyAV, numpy and OpenCV (which the core does not depend on).

Modules:
- `frames`: decode one self-contained keyframe (PyAV); the BGR array a model takes, the grey thumbnail the
  detector's motion gate compares (the detector and the API's snapshots).
- `clips`: clip export proper: recorded MP4 chunks remuxed (never transcoded) into one MP4 cut to a time range.
- `fmp4`: fragmented MP4, the layout chunks are stored in: top-level boxes, `is_fragmented`, the init/media
  split, and `to_fragmented` (an old plain MP4 chunk remuxed into that layout).
- `clipexport`: clip export as the CLI (`spectare clip export`) and the API do it: chunk pages from the indexer
  (an `IndexClient`), downloads by presigned URL, `clips.export_clip`, the upload of the clip to the bucket.

Importing this package, `clipexport` or `fmp4`, needs no PyAV: `frames` and `clips` import it at their top,
`fmp4.to_fragmented` when it is called, and `clipexport` imports `clips` inside the functions that remux, so a
command that only lists chunks runs on the core install. Layers (enforced by `[tool.importlinter]` in
pyproject.toml): services, the CLI and the local stack may import spectare.media; spectare.media imports
spectare.core and spectare.schemas only, never a service.
"""
