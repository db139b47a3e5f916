"""`-f PATH` sources: files, directories (*.yaml, *.yml, *.json, sorted, not recursive) and `-` (stdin).

Documents are parsed locally with `controller.manifests.loader`, so a YAML error names the file and
the line; each keeps its file and position, so a server 400 about document i of the request can be
told back as "FILE: document j (NAME, line N): field: problem".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from api.client.errors import UsageError
from controller.manifests.json_loader import load_json
from controller.manifests.loader import Limits, ManifestSyntaxError, RawDocument, load_yaml

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"


@dataclass(frozen=True)
class Document:
    source: str  # the path as given (a directory's file as DIR/NAME), or "<stdin>"
    index: int  # position in its file, 0-based, as the loader counts
    line: int | None
    data: Any

    @property
    def name(self) -> str | None:
        metadata = self.data.get("metadata") if isinstance(self.data, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None

    @property
    def kind(self) -> str | None:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        return kind if isinstance(kind, str) else None

    def where(self) -> str:
        extra = [part for part in (self.name, f"line {self.line}" if self.line else None) if part]
        return f"{self.source}: document {self.index}" + (f" ({', '.join(extra)})" if extra else "")


def expand(paths: Sequence[str]) -> list[str]:
    """The files to read, in order: a directory becomes its manifest files sorted by name."""
    files: list[str] = []
    for given in paths:
        if given == STDIN:
            if STDIN in files:
                raise UsageError("-f - (stdin) given more than once")
            files.append(STDIN)
            continue
        path = Path(given)
        if path.is_dir():
            files.extend(str(path / entry.name) for entry in sorted(path.iterdir(), key=lambda item: item.name)
                         if entry.suffix.lower() in SUFFIXES and entry.is_file())
        elif path.exists():
            files.append(given)
        else:
            raise UsageError(f"{given}: no such file or directory")
    return files


def parse(label: str, text: str, json_media: bool, limits: Limits | None = None) -> list[Document]:
    try:
        raw: list[RawDocument] = (load_json if json_media else load_yaml)(text, limits or Limits())
    except ManifestSyntaxError as exc:
        raise UsageError(f"{label}: {exc}") from exc
    return [Document(label, item.index, item.line, item.data) for item in raw]


def read(paths: Sequence[str], stdin: TextIO) -> list[Document]:
    """Every document of every source, in order. No documents at all is a usage error."""
    documents: list[Document] = []
    for file in expand(paths):
        if file == STDIN:
            label, text = "<stdin>", stdin.read()
            json_media = text.lstrip()[:1] in ("{", "[")
        else:
            label, json_media = file, file.lower().endswith(".json")
            try:
                text = Path(file).read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"{file}: not UTF-8 text") from exc
            except OSError as exc:
                raise UsageError(f"{file}: {exc.strerror or exc}") from exc
        documents.extend(parse(label, text, json_media))
    if not documents:
        raise UsageError(f"no manifests found in {', '.join(paths)}")
    return documents


_DOCUMENT_PREFIX = re.compile(r"^document \d+(?: \([^)]*\))?: ")


def explain(documents: Sequence[Document], body: Any) -> str | None:
    """A server 400 about document i of the request, told against its file; None if it names none."""
    if not isinstance(body, dict):
        return None
    index = body.get("document")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(documents):
        return None
    details = [item for item in body.get("details") or [] if isinstance(item, dict)]
    first = next((item for item in details if item.get("document") == index), None)
    if first is not None and isinstance(first.get("message"), str):
        field, problem = first.get("field"), first["message"]
    else:
        field, problem = body.get("field"), _DOCUMENT_PREFIX.sub("", str(body.get("error") or "invalid"))
    if isinstance(field, str) and field:
        problem = problem.removeprefix(f"{field}: ")
        text = f"{documents[index].where()}: {field}: {problem}"
    else:
        text = f"{documents[index].where()}: {problem}"
    more = len(details) - 1
    if more > 0:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text
