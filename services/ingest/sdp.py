"""The parts of an SDP description (RFC 8866) an RTSP client needs: each media section's type, RTP
payload type, codec, clock rate, format parameters and control URL (pure, no I/O)."""

from dataclasses import dataclass, field

# RTP encoding names (rtpmap) -> FFmpeg codec names, as the rest of Spectare names codecs.
CODEC_NAMES = {
    "h264": "h264", "h265": "hevc", "mpeg4-generic": "aac", "mp4a-latm": "aac", "pcmu": "pcm_mulaw",
    "pcma": "pcm_alaw", "opus": "opus", "g726-32": "adpcm_g726", "l16": "pcm_s16be", "jpeg": "mjpeg",
    "mp4v-es": "mpeg4",
}
# Static payload types (RFC 3551) that come without an rtpmap line.
_STATIC = {0: ("pcmu", 8000), 8: ("pcma", 8000), 26: ("jpeg", 90000)}


@dataclass
class Media:
    kind: str  # video, audio, application, ...
    payload_type: int
    encoding: str = ""  # rtpmap encoding name, lower case
    clock_rate: int = 90000
    channels: int = 1  # audio: rtpmap's encoding parameters
    fmtp: dict[str, str] = field(default_factory=dict)  # keys lower case
    control: str = ""
    framerate: float | None = None

    @property
    def codec(self) -> str:
        return CODEC_NAMES.get(self.encoding, self.encoding or "unknown")

    def control_url(self, base: str) -> str:
        """The URL to SETUP this media with."""
        return resolve_control(self.control, base)


@dataclass
class Session:
    media: list[Media]
    control: str = ""

    def first(self, kind: str) -> Media | None:
        return next((m for m in self.media if m.kind == kind), None)

    def control_url(self, base: str) -> str:
        """The URL to PLAY the whole session with."""
        return resolve_control(self.control, base)


def resolve_control(control: str, base: str) -> str:
    """RFC 2326 C.1.1: a control URL is relative to the base; none or '*' means the base itself.

    Relative controls are appended to the base as live555 and FFmpeg do, not joined by URL rules:
    cameras put queries in their base (`...realmonitor?channel=1&subtype=0/`) and expect this."""
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    return (base if base.endswith("/") else base + "/") + control


def parse(text: str) -> Session:
    session = Session(media=[])
    current: Media | None = None
    for line in text.splitlines():
        line = line.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            payload = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else -1
            current = Media(kind=parts[0].lower() if parts else "", payload_type=payload)
            encoding, rate = _STATIC.get(payload, ("", 90000))
            current.encoding, current.clock_rate = encoding, rate
            session.media.append(current)
        elif kind == "a":
            name, _, attr = value.partition(":")
            if current is None:
                if name == "control":
                    session.control = attr.strip()
            else:
                _attribute(current, name.lower(), attr.strip())
    return session


def _attribute(media: Media, name: str, value: str) -> None:
    if name == "control":
        media.control = value
    elif name == "rtpmap":
        payload, _, spec = value.partition(" ")
        if payload.strip() == str(media.payload_type):
            encoding, _, rest = spec.partition("/")
            media.encoding = encoding.strip().lower()
            rate, _, channels = rest.partition("/")
            if rate.isdigit():
                media.clock_rate = int(rate)
            if channels.strip().isdigit() and 0 < int(channels) <= 8:
                media.channels = int(channels)
    elif name == "fmtp":
        payload, _, params = value.partition(" ")
        if payload.strip() == str(media.payload_type):
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key:
                    media.fmtp[key.strip().lower()] = val.strip()
    elif name == "framerate":
        try:
            media.framerate = float(value) or None
        except ValueError:
            pass
