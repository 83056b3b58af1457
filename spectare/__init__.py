"""Spectare: record RTSP cameras into S3 over NATS JetStream, detect, index, search."""

__version__ = "0.1.0"
