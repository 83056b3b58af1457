"""The embedded single-machine stack: real nats-server, SeaweedFS S3 and an RTSP test camera as
child processes on loopback, used by `spectare up` and by the test fixtures alike."""
