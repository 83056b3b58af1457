"""Names the segmenter gives footage events: the `Nats-Msg-Id` of Segment and Gap events. Pure.
(S3 keys of chunks are in `spectare.schemas.keys`; both Msg-Id formats are built in `spectare.schemas.msgids`.)

- Segment event id: `<cam>:<session>:<first_seq>`; Gap event id: `<cam>:gap:<start>:<end|open>` with
  times as Unix seconds to the microsecond (`1795845752.345000`). JetStream drops a re-publish with the
  same id within the FOOTAGE stream's duplicate window; consumers upsert gaps by camera + start.
"""

from spectare.schemas import Gap, gap_id, segment_id


def segment_msg_id(camera: str, session: str, first_seq: int) -> str:
    return segment_id(camera, session, first_seq)


def gap_msg_id(gap: Gap) -> str:
    return gap_id(gap.camera, gap.start, gap.end)
