"""Golden encoded messages (tests/golden/, written once by tests/golden/make.py): today's schemas decode what was
written before to the same values, and today's encoder writes the same bytes for the current version.

A failure here is a change to schemas/ that stored messages (streams, KV buckets) and other releases would feel: a
field renamed, removed, retyped or reordered, a default changed, a kind renamed, a version bumped without a golden
file. Never regenerate a golden file to make this pass (see make.py).
"""

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

import spectare.schemas
from spectare.schemas.messages import Message, unpack_message
from tests.golden.make import GOLDEN, NAME, from_json, to_json


def _message_types() -> dict[str, type[Message]]:
    found: dict[str, type[Message]] = {}
    # every module of the schemas package, so a new module's kinds need a golden file too
    modules = [importlib.import_module(f"spectare.schemas.{info.name}")
               for info in pkgutil.iter_modules(spectare.schemas.__path__)]
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Message) and value.__module__ == module.__name__ \
                    and value is not Message:
                assert value.KIND not in found, f"two message types of kind {value.KIND!r}"
                found[value.KIND] = value
    return found


TYPES = _message_types()
FILES = sorted(GOLDEN.glob("*.msgpack"))


def _expected(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def test_every_golden_file_has_its_expected_value_and_a_proper_name():
    assert {p.stem for p in FILES} == {p.stem for p in GOLDEN.glob("*.json")}
    assert all(re.fullmatch(NAME, p.stem) for p in FILES), [p.name for p in FILES if not re.fullmatch(NAME, p.stem)]


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_every_kind_has_a_golden_file_of_its_current_version(kind):
    path = GOLDEN / f"{kind}-v{TYPES[kind].VERSION}.msgpack"
    assert path.exists(), f"{path.name} is missing: add the case to tests/golden/make.py and run it"
    assert _expected(path)["reencodes"], f"{path.name} must be what today's encoder writes"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden_messages_decode_to_their_values(path):
    expected, data, name = _expected(path), path.read_bytes(), re.fullmatch(NAME, path.stem)
    envelope = unpack_message(data)
    assert (envelope["kind"], envelope["v"]) == (expected["kind"], expected["v"]) == (name["kind"], int(name["v"]))
    assert expected["kind"] in TYPES, f"spectare.schemas has no message of kind {expected['kind']!r} any more"
    decoded = TYPES[expected["kind"]].decode(data)
    assert to_json(decoded.model_dump(mode="python")) == expected["value"]


@pytest.mark.parametrize("path", [p for p in FILES if _expected(p)["reencodes"]], ids=lambda p: p.stem)
def test_todays_encoder_writes_the_golden_bytes(path):
    expected = _expected(path)
    message = TYPES[expected["kind"]].create(**from_json(expected["value"]))
    assert message.encode() == path.read_bytes()
