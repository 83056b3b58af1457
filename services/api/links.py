"""The API paths that stand for stored objects, without I/O: a detection snapshot
(`/cameras/byname/<cam>/snapshots/<key tail>`) and an exported clip (`/cameras/byname/<cam>/clips/<file>.mp4`),
and back from a path's tail to the object key. Only the key shapes Spectare writes (`spectare.schemas.keys`) are
accepted, so no path reaches another camera's objects or anything else in the bucket."""

import re
from urllib.parse import quote

from spectare.schemas.keys import CLIP_PREFIX, SNAPSHOT_PREFIX

_STAMP = r"\d{8}T\d{6}\.\d{3}Z"
# After `snapshots/<camera>/`: YYYY/MM/DD/HH/<stamp>-<session>-<seq>.jpg (the session percent-encoded in the key).
SNAPSHOT_TAIL = re.compile(r"\d{4}/\d{2}/\d{2}/\d{2}/" + _STAMP + r"-[A-Za-z0-9._~%-]{1,200}-\d{1,20}\.jpg")
# After `clips/<camera>/`, without `.mp4`: <start stamp>-<end stamp>.
CLIP_FILE = re.compile(_STAMP + "-" + _STAMP)


def camera_path(root: str, camera: str) -> str:
    return f"{root}/cameras/byname/{camera}"


def snapshot_key_of(camera: str, tail: str) -> str | None:
    """The snapshot key a route's tail names, None for anything that is not a snapshot key's tail."""
    return f"{SNAPSHOT_PREFIX}/{camera}/{tail}" if SNAPSHOT_TAIL.fullmatch(tail) else None


def snapshot_path(root: str, camera: str, key: str | None) -> str | None:
    """The API path serving snapshot `key` of `camera` (None: no key, or one of another shape or camera); the
    tail percent-encoded as a path (a session may hold `%`), which the route decodes back to the key."""
    prefix = f"{SNAPSHOT_PREFIX}/{camera}/"
    if key is None or not key.startswith(prefix) or snapshot_key_of(camera, key[len(prefix):]) is None:
        return None
    return f"{camera_path(root, camera)}/snapshots/" + quote(key[len(prefix):], safe="/")


def clip_key_of(camera: str, file: str) -> str | None:
    """The clip key a route's file name (without `.mp4`) names, None for anything else."""
    return f"{CLIP_PREFIX}/{camera}/{file}.mp4" if CLIP_FILE.fullmatch(file) else None


def clip_path(root: str, camera: str, key: str) -> str | None:
    """The API path downloading clip `key` of `camera`, None for a key of another shape or camera."""
    prefix = f"{CLIP_PREFIX}/{camera}/"
    file = key[len(prefix):].removesuffix(".mp4") if key.startswith(prefix) and key.endswith(".mp4") else ""
    return f"{camera_path(root, camera)}/clips/{file}.mp4" if clip_key_of(camera, file) else None


def download_name(camera: str, file: str) -> str:
    """The file name a downloaded clip is saved as: `<camera>-<start>-<end>.mp4` (no character a shell or a
    Content-Disposition header would trip on: the stamp's `:`-free form)."""
    return f"{camera}-{file}.mp4"
