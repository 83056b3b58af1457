"""Video and audio of one session -> one packet stream whose order puts every audio packet on the right side of
every video keyframe (pure, no I/O, no clock of its own).

The segmenter cuts chunks at video keyframes and puts an audio packet into the chunk open when it arrives, so ingest
publishes an audio packet before keyframe K exactly when its wall time is before K's: an audio frame that straddles
a cut goes with the chunk it starts in. The camera's two tracks arrive skewed by tens of milliseconds (RTP packets of
each track are sent as they are encoded), so a keyframe waits until the audio has reached its time, and an audio
packet until the video has reached its; neither waits longer than `max_wait_s` of the other track's media time,
so a camera whose audio stops (or video stalls) still records. Non-key video frames never wait: where they fall
among audio packets changes nothing.
"""

from collections import deque
from dataclasses import dataclass

from .audio import TimedAudio
from .timing import TimedPacket

_NEVER = float("-inf")


@dataclass(frozen=True, slots=True)
class Merged:
    """One video packet or audio run released for publishing: exactly one of `video` and `audio` is set."""

    video: TimedPacket | None = None
    audio: TimedAudio | None = None


class TrackMerger:
    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self._video: deque[TimedPacket] = deque()
        self._audio: deque[TimedAudio] = deque()
        self._video_seen = _NEVER  # latest video wall time received
        self._audio_seen = _NEVER

    def video(self, packets: list[TimedPacket]) -> list[Merged]:
        for packet in packets:
            self._video.append(packet)
            self._video_seen = max(self._video_seen, packet.wall_time)
        return self._release()

    def audio(self, runs: list[TimedAudio]) -> list[Merged]:
        for run in runs:
            self._audio.append(run)
            self._audio_seen = max(self._audio_seen, run.last_wall)
        return self._release()

    def drain(self) -> list[Merged]:
        """Everything still held, in order (the session is over)."""
        self._video_seen = self._audio_seen = float("inf")
        return self._release()

    def _release(self) -> list[Merged]:
        out: list[Merged] = []
        video, audio = self._video, self._audio
        while True:
            cut = video[0].wall_time if video and video[0].keyframe else None
            while audio:
                ready = self._audio_ready(audio[0], cut)
                if ready == len(audio[0].units):
                    out.append(Merged(audio=audio.popleft()))
                    continue
                if ready:  # a run split where it meets the keyframe, or where the video has got to
                    first, audio[0] = audio[0].split(ready)
                    out.append(Merged(audio=first))
                break
            if not video:
                return out
            head = video[0]
            if head.keyframe:
                if not self._keyframe_ready(head) or (audio and audio[0].wall_time < head.wall_time):
                    return out
            out.append(Merged(video=video.popleft()))

    def _audio_ready(self, run: TimedAudio, cut: float | None) -> int:
        """How many of the run's first units may go: those before the cut whose time the video has reached, or that
        the audio is `max_wait_s` past."""
        reached = max(self._video_seen, self._audio_seen - self.max_wait_s)
        ready = 0
        for n in range(len(run.units)):
            wall = run.wall_at(n)
            if wall > reached or (cut is not None and wall >= cut):
                break
            ready += 1
        return ready

    def _keyframe_ready(self, keyframe: TimedPacket) -> bool:
        return self._audio_seen >= keyframe.wall_time or self._video_seen - keyframe.wall_time >= self.max_wait_s
