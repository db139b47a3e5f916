"""pvem's ownership marks on Proxmox objects: how they are written and how they are recognised. Pure, no I/O.

This module owns the mark formats. A VM or snapshot carries a line `pvem:id=<uuid>` in its description
(and VMs the `pvem` tag); a firewall rule carries `pvem:<uuid>` at the start of its comment. pvem only
touches objects whose mark it finds, and finds its own half-finished creates by the mark after a crash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARK_TAG = "pvem"
_ID = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_ID_RE = re.compile(rf"^{_ID}$")
_DESCRIPTION_MARK_RE = re.compile(rf"^[ \t]*{MARK_TAG}:id=(?P<id>{_ID})[ \t]*\r?$", re.MULTILINE)
_RULE_MARK_RE = re.compile(rf"^\s*{MARK_TAG}:(?P<id>{_ID})(?:\s+(?P<rest>.*?))?\s*$", re.DOTALL)
# PVE accepts ';', ',' and spaces between tags when it parses them, and writes ';' back.
_TAG_SEPARATORS = re.compile(r"[;,\s]+")


def _checked_id(value: str) -> str:
    # The id is parsed back out of free text, so anything that could end or fake a mark is refused here.
    if not _ID_RE.match(value):
        raise ValueError(f"not usable as a pvem mark id: {value!r}")
    return value


def mark_line(object_uuid: str) -> str:
    """The description line that marks an object as pvem's: `pvem:id=<uuid>`."""
    return f"{MARK_TAG}:id={_checked_id(object_uuid)}"


def strip_mark(description: str | None) -> str:
    """The description without pvem's mark lines: the text a person wrote."""
    if not description:
        return ""
    return _DESCRIPTION_MARK_RE.sub("", description).strip()


def description_with_mark(vm_uuid: str, text: str = "") -> str:
    """`text` followed by the mark line; an existing mark in `text` is replaced, never repeated."""
    line = mark_line(vm_uuid)
    body = strip_mark(text)
    return f"{body}\n\n{line}" if body else line


def mark_of(description: str | None) -> str | None:
    """The uuid in a description's `pvem:id=` line, or None for an object pvem did not create."""
    if not description:
        return None
    found = _DESCRIPTION_MARK_RE.search(description)
    return found.group("id") if found else None


def snapshot_description(snapshot_uuid: str, description: str | None) -> str:
    """A snapshot's description with the mark line (the same convention as a VM's)."""
    return description_with_mark(snapshot_uuid, description or "")


def snapshot_mark(description: str | None) -> str | None:
    """The uuid marking a snapshot as pvem's, or None."""
    return mark_of(description)


def rule_comment(rule_uuid: str, comment: str | None) -> str:
    """A firewall rule comment: `pvem:<uuid>`, then the person's comment if there is one."""
    head = f"{MARK_TAG}:{_checked_id(rule_uuid)}"
    # PVE keeps rule comments on the rule's own line in the firewall file: no newlines survive.
    text = " ".join(rule_user_comment(comment).split()) if comment else ""
    return f"{head} {text}" if text else head


def rule_mark(comment: str | None) -> str | None:
    """The uuid at the start of a rule comment, or None for a rule pvem did not create."""
    if not comment:
        return None
    found = _RULE_MARK_RE.match(comment)
    return found.group("id") if found else None


def rule_user_comment(comment: str | None) -> str:
    """The part of a rule comment after pvem's mark (the whole comment if it carries none)."""
    if not comment:
        return ""
    found = _RULE_MARK_RE.match(comment)
    if found is None:
        return comment.strip()
    return (found.group("rest") or "").strip()


def split_tags(tags: str | Iterable[str] | None) -> list[str]:
    """Tags as PVE compares them: split on any separator, lower case, de-duplicated and sorted."""
    if tags is None:
        return []
    chunks = [tags] if isinstance(tags, str) else list(tags)
    parts = [part for chunk in chunks for part in _TAG_SEPARATORS.split(chunk)]
    return sorted({p.lower() for p in parts if p})


def join_tags(tags: str | Iterable[str] | None) -> str | None:
    """The canonical `a;b;c` form of some tags, or None when there are none."""
    return ";".join(split_tags(tags)) or None


def tags_with_mark(tags: str | Iterable[str] | None) -> str:
    """The canonical tag string with the `pvem` tag added."""
    return ";".join(split_tags([*split_tags(tags), MARK_TAG]))


def has_tag(tags: str | None, tag: str = MARK_TAG) -> bool:
    """True if `tag` is among the tags, whichever separators or order Proxmox used."""
    return tag.lower() in split_tags(tags)
