"""ReadAhead: a camera connection is read while publishing waits, up to a bound, and ends the way it ended."""

import asyncio
from fractions import Fraction

import pytest

from services.ingest.media import SourceEnded, SourceInfo
from services.ingest.readahead import ReadAhead
from services.ingest.rtp import UnsupportedStream
from services.ingest.timing import RawPacket

INFO = SourceInfo("h264", 640, 360, Fraction(1, 90000), b"", 15.0)


class CountingSource:
    """Packets of `size` bytes, as fast as they are asked for, then `end` after `count` of them."""

    def __init__(self, count: int, size: int, end: Exception) -> None:
        self.info = INFO
        self.count, self.size, self.end = count, size, end
        self.read = 0
        self.closed = False

    async def next(self) -> RawPacket:
        await asyncio.sleep(0)
        if self.read == self.count:
            raise self.end
        self.read += 1
        return RawPacket(self.read, None, 0, self.read == 1, bytes(self.size), float(self.read))

    async def close(self) -> None:
        self.closed = True

    def losses(self) -> dict[str, int]:
        return {"rtp_packets_lost": 3}


async def test_the_camera_is_read_while_nobody_takes_packets_up_to_the_bound():
    source = CountingSource(count=1000, size=1024, end=SourceEnded("over"))
    ahead = ReadAhead(source, max_bytes=10 * 1024)
    await asyncio.sleep(0.05)  # publishing is stuck: nobody calls next()
    assert source.read == 10, "read on, but no further than the bound"
    assert (await ahead.next()).pts == 1
    await asyncio.sleep(0.05)
    assert source.read == 11, "taking one makes room for one"
    await ahead.close()
    assert source.closed and ahead.losses() == {"rtp_packets_lost": 3}


@pytest.mark.parametrize("end", [SourceEnded("the camera closed the connection"), UnsupportedStream("video codec vp8")])
async def test_every_packet_comes_out_in_order_then_how_the_connection_ended(end):
    ahead = ReadAhead(CountingSource(count=5, size=100, end=end), max_bytes=1024 * 1024)
    got = [(await ahead.next()).pts for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]
    for _ in range(2):  # and every later call the same way
        with pytest.raises(type(end), match=str(end)):
            await ahead.next()
    await ahead.close()
