"""The ownership marks: written so that they read back, whatever Proxmox does to the text around them."""

from __future__ import annotations

import pytest

from controller.proxmox.marks import (
    MARK_TAG,
    description_with_mark,
    has_tag,
    join_tags,
    mark_of,
    rule_comment,
    rule_mark,
    rule_user_comment,
    snapshot_description,
    snapshot_mark,
    split_tags,
    strip_mark,
    tags_with_mark,
)

UUID = "5f0c2a4e-8d1b-4c3a-9e7f-0a1b2c3d4e5f"


@pytest.mark.parametrize(("text", "expected"), [
    ("", f"pvem:id={UUID}"),
    ("web server", f"web server\n\npvem:id={UUID}"),
    ("  two\nlines \n", f"two\nlines\n\npvem:id={UUID}"),
    (f"kept\n\npvem:id={UUID}", f"kept\n\npvem:id={UUID}"),
    ("kept\npvem:id=old-id", f"kept\n\npvem:id={UUID}"),
])
def test_description_with_mark(text: str, expected: str) -> None:
    assert description_with_mark(UUID, text) == expected
    assert mark_of(description_with_mark(UUID, text)) == UUID


@pytest.mark.parametrize(("description", "expected"), [
    (None, None),
    ("", None),
    ("hand made", None),
    (f"pvem:id={UUID}", UUID),
    (f"notes\npvem:id={UUID}\n", UUID),
    (f"notes\r\n  pvem:id={UUID}  \r\n", UUID),
    (f"say pvem:id={UUID} inline", None),
    ("pvem:id=", None),
    (f"pvem:{UUID}", None),
])
def test_mark_of(description: str | None, expected: str | None) -> None:
    assert mark_of(description) == expected


@pytest.mark.parametrize(("description", "expected"), [
    (None, ""),
    (f"pvem:id={UUID}", ""),
    (f"hello\n\npvem:id={UUID}\n", "hello"),
])
def test_strip_mark(description: str | None, expected: str) -> None:
    assert strip_mark(description) == expected


@pytest.mark.parametrize("bad", ["", "has space", "new\nline", "-leading-dash", "a=b"])
def test_mark_ids_that_could_not_be_read_back_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="mark id"):
        description_with_mark(bad)
    with pytest.raises(ValueError, match="mark id"):
        rule_comment(bad, None)


@pytest.mark.parametrize(("comment", "expected"), [
    (None, f"pvem:{UUID}"),
    ("", f"pvem:{UUID}"),
    ("ssh from the office", f"pvem:{UUID} ssh from the office"),
    ("multi\nline  comment", f"pvem:{UUID} multi line comment"),
    ("pvem:other-id ssh", f"pvem:{UUID} ssh"),
])
def test_rule_comment(comment: str | None, expected: str) -> None:
    assert rule_comment(UUID, comment) == expected
    assert rule_mark(expected) == UUID


@pytest.mark.parametrize(("comment", "mark", "user_text"), [
    (None, None, ""),
    ("", None, ""),
    ("ssh", None, "ssh"),
    (f"pvem:{UUID}", UUID, ""),
    (f"pvem:{UUID} ssh", UUID, "ssh"),
    (f"  pvem:{UUID}   web  ", UUID, "web"),
    (f"pvem:id={UUID}", None, f"pvem:id={UUID}"),
    (f"ssh pvem:{UUID}", None, f"ssh pvem:{UUID}"),
    ("pvem:", None, "pvem:"),
])
def test_rule_mark(comment: str | None, mark: str | None, user_text: str) -> None:
    assert rule_mark(comment) == mark
    assert rule_user_comment(comment) == user_text


@pytest.mark.parametrize(("description", "expected"), [
    (None, f"pvem:id={UUID}"),
    ("before upgrade", f"before upgrade\n\npvem:id={UUID}"),
])
def test_snapshot_marks(description: str | None, expected: str) -> None:
    assert snapshot_description(UUID, description) == expected
    assert snapshot_mark(expected) == UUID
    assert snapshot_mark("You are here!") is None


@pytest.mark.parametrize(("tags", "tag", "expected"), [
    (None, MARK_TAG, False),
    ("", MARK_TAG, False),
    ("pvem", MARK_TAG, True),
    ("db;pvem;web", MARK_TAG, True),
    ("web,pvem", MARK_TAG, True),
    ("web pvem", MARK_TAG, True),
    ("PVEM;web", MARK_TAG, True),
    ("pvem-old;web", MARK_TAG, False),
    ("xpvem", MARK_TAG, False),
    ("prod;web", "prod", True),
])
def test_has_tag(tags: str | None, tag: str, expected: bool) -> None:
    assert has_tag(tags, tag) is expected


@pytest.mark.parametrize(("tags", "split", "joined"), [
    (None, [], None),
    ("", [], None),
    ("Web,prod db", ["db", "prod", "web"], "db;prod;web"),
    ("b;a;;a", ["a", "b"], "a;b"),
    (["z", "a;b"], ["a", "b", "z"], "a;b;z"),
])
def test_split_and_join_tags(tags: str | list[str] | None, split: list[str], joined: str | None) -> None:
    assert split_tags(tags) == split
    assert join_tags(tags) == joined


@pytest.mark.parametrize(("tags", "expected"), [
    (None, "pvem"),
    ("web", "pvem;web"),
    (["pvem", "db"], "db;pvem"),
])
def test_tags_with_mark(tags: str | list[str] | None, expected: str) -> None:
    assert tags_with_mark(tags) == expected
