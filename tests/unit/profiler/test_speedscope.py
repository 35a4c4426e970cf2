"""speedscope output against speedscope's own published schema (copied from the npm package)."""

import io
import json

import jsonschema

from stapdoctor.profiler.collapse import collapse_stap
from stapdoctor.profiler.speedscope import speedscope_document, write_speedscope


def _schema(data_dir):
    return json.loads((data_dir / "speedscope" / "file-format-schema.json").read_text())


def test_busy_profile_validates(data_dir):
    with open(data_dir / "collapse" / "busy-debian-unstable" / "input.txt", "rb") as f:
        c = collapse_stap(f)
    buf = io.StringIO()
    write_speedscope(c.stacks, buf, name="busy", modules=c.modules)
    doc = json.loads(buf.getvalue())
    jsonschema.Draft7Validator(_schema(data_dir)).validate(doc)
    prof = doc["profiles"][0]
    assert prof["type"] == "sampled" and prof["endValue"] == sum(prof["weights"]) == c.total
    frames = doc["shared"]["frames"]
    assert len(frames) == len({f["name"] for f in frames})  # shared, not repeated
    # samples are root first and reproduce the stacks
    back = {tuple(frames[i]["name"] for i in s): w for s, w in zip(prof["samples"], prof["weights"])}
    assert back == c.stacks
    assert {"name": "func_c", "file": "busy"} in frames


def test_hostile_names_validate(data_dir):
    doc = speedscope_document({("main", "</script>&quot;"): 1}, name="x <y>")
    jsonschema.Draft7Validator(_schema(data_dir)).validate(doc)


def test_schema_rejects_a_broken_document(data_dir):
    doc = speedscope_document({("main",): 1}, name="x")
    del doc["profiles"][0]["weights"]
    assert not jsonschema.Draft7Validator(_schema(data_dir)).is_valid(doc)


def test_same_name_in_two_modules_is_two_frames(data_dir):
    with open(data_dir / "collapse" / "same-name-two-modules" / "input.txt", "rb") as f:
        c = collapse_stap(f)
    doc = speedscope_document(c.stacks, name="x", modules=c.modules, names=c.names)
    frames = doc["shared"]["frames"]
    assert {"name": "main", "file": "nginx"} in frames and {"name": "main", "file": "qemu-system-x86_64"} in frames
    prof = doc["profiles"][0]
    by_frame: dict = {}
    for s, w in zip(prof["samples"], prof["weights"]):
        f = frames[s[0]]
        by_frame[(f["name"], f["file"])] = by_frame.get((f["name"], f["file"]), 0) + w
    assert by_frame == {("main", "nginx"): 7, ("main", "qemu-system-x86_64"): 3}
    jsonschema.Draft7Validator(_schema(data_dir)).validate(doc)
