"""A camera connection read on its own task, ahead of publishing, into a bounded buffer.

Publishing can stop for seconds: a NATS node lost, its streams electing new leaders, every unacknowledged message
sent again. A camera does not wait for a reader that stopped reading: its send buffer fills and it drops frames
(an RTSP server over TCP does; GStreamer's drops the client's backlog). So the connection is read all the time, and
what publishing has not taken yet waits here, up to `max_bytes`; past that, reading waits too (the camera then
drops, as before, rather than this process growing without bound). Receipt times are taken when packets are read,
so timing is the camera's, not the bus's.
"""

import asyncio
import contextlib

from .media import AudioUnits, RawPacket, Source, SourceInfo


class ReadAhead:
    """A Source that reads `source` ahead into a buffer of at most `max_bytes` (a Source itself)."""

    def __init__(self, source: Source, max_bytes: int) -> None:
        self.source = source
        self.info: SourceInfo = source.info
        self.max_bytes = max_bytes
        self.buffered_bytes = 0
        self._items: asyncio.Queue[RawPacket | AudioUnits | Exception] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        self._reader = asyncio.create_task(self._read(), name="ingest-read-ahead")

    async def next(self) -> RawPacket | AudioUnits:
        item = await self._items.get()
        if isinstance(item, Exception):  # how the connection ended (SourceEnded, UnsupportedStream, ...), in order
            self._items.put_nowait(item)  # every later call ends the same way
            raise item
        self.buffered_bytes -= _size(item)
        if self.buffered_bytes < self.max_bytes:
            self._room.set()
        return item

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.source.close()

    def losses(self) -> dict[str, int]:
        return self.source.losses()

    async def _read(self) -> None:
        try:
            while True:
                await self._room.wait()
                item = await self.source.next()
                self.buffered_bytes += _size(item)
                if self.buffered_bytes >= self.max_bytes:
                    self._room.clear()
                self._items.put_nowait(item)
        except Exception as exc:  # noqa: BLE001 - handed to the reader of `next`, after what came before it
            self._items.put_nowait(exc)


def _size(item: RawPacket | AudioUnits) -> int:
    return item.size if isinstance(item, AudioUnits) else len(item.data)
