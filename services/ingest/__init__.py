"""Ingest: pulls RTSP cameras (demux only, never decode) and publishes every packet and keyframe."""
