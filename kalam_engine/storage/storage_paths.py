"""Where a custom storage (CREATE STORAGE) puts segment files: its base directory and the path
templates below it, checked so that no table, user or template can reach outside the base.

Rules (checked when the storage is created, and again for every path a flush computes):

- A base directory is absolute, or relative to the data directory (``PATH 'archive'`` is
  ``<data_dir>/archive``). Symbolic links are resolved. It may not be, or contain, the data
  directory, lie inside ``<data_dir>/storage`` (the ``local`` storage) or
  ``<data_dir>/quarantine``, overlap another storage's base, or lie inside another Kalam data
  directory (a directory holding ``kalam.sqlite``).
- A template is a relative path of ``/``-separated parts made of letters, digits, ``_``, ``-``
  and ``.`` plus the placeholders ``{namespace}``, ``{tableName}``, ``{userId}``, ``{shard}``
  (KalamDB's older spellings ``{namespace_id}``, ``{table_name}``, ``{user_id}`` are
  normalised). No part is empty, ``.``, ``..`` or starts with ``.``; each part holds at most one
  placeholder and each placeholder appears once, so two tables or users never share a directory.
  The shared template needs ``{namespace}`` and ``{tableName}`` and may not use ``{userId}``;
  the user template needs all three; the two differ in depth, so a shared table's directory is
  never a user's.
- Every substituted value must be a plain name (letters, digits, ``_``), and the directory a
  template yields must resolve inside the base.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

from kalam_engine.model.errors import InvalidParameterError, StorageError

DEFAULT_SHARED_TEMPLATE = "{namespace}/{tableName}"
DEFAULT_USER_TEMPLATE = "{namespace}/{tableName}/{userId}"
PLACEHOLDERS = ("namespace", "tableName", "userId", "shard")
_LEGACY = {"namespace_id": "namespace", "table_name": "tableName", "tablename": "tableName",
           "user_id": "userId", "userid": "userId", "table": "tableName"}
_PART = re.compile(r"[A-Za-z0-9_.\-]*(\{[A-Za-z_]+\})?[A-Za-z0-9_.\-]*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_VALUE = re.compile(r"[A-Za-z0-9_]+")
SHARDS = 64  # {shard}: a stable bucket of the user id (KalamDB shards by user)
MAX_TEMPLATE_LENGTH = 256
RESERVED_SUBDIRS = ("storage", "quarantine")  # of the data directory


def _bad_template(kind: str, template: str, why: str) -> InvalidParameterError:
    return InvalidParameterError(
        f"Invalid {kind} template {template!r}: {why}",
        hint="use parts such as '{namespace}/{tableName}' (shared) or "
             "'{namespace}/{tableName}/{userId}' (user), relative to the base directory")


def normalise_template(template: str, kind: str) -> str:
    """The template with legacy placeholder spellings replaced, after checking it (kind is
    "shared" or "user")."""
    if not template or len(template) > MAX_TEMPLATE_LENGTH:
        raise _bad_template(kind, template[:80], "it is empty or too long")

    def rename(m: re.Match[str]) -> str:
        name = m.group(1)
        return "{" + _LEGACY.get(name.lower(), _LEGACY.get(name, name)) + "}"

    text = _PLACEHOLDER.sub(rename, template)
    if text.startswith("/") or "\\" in text or ":" in text:
        raise _bad_template(kind, template, "it must be a relative path with '/' separators")
    parts = text.split("/")
    seen: list[str] = []
    for part in parts:
        if part in ("", ".", "..") or part.startswith("."):
            raise _bad_template(kind, template, f"the part {part!r} is not allowed")
        if not _PART.fullmatch(part):
            raise _bad_template(kind, template, f"the part {part!r} has characters other than "
                                                "letters, digits, _ - . and one placeholder")
        for name in _PLACEHOLDER.findall(part):
            if name not in PLACEHOLDERS:
                raise _bad_template(kind, template, f"unknown placeholder {{{name}}} (known: "
                                    + ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ")")
            if name in seen:
                raise _bad_template(kind, template, f"{{{name}}} appears twice")
            seen.append(name)
    needed = {"namespace", "tableName"} | ({"userId"} if kind == "user" else set())
    if missing := needed - set(seen):
        raise _bad_template(kind, template, "it needs " + ", ".join(
            "{" + p + "}" for p in sorted(missing)) + " so that every table"
            + (" and user" if kind == "user" else "") + " gets its own directory")
    if kind == "shared" and "userId" in seen:
        raise _bad_template(kind, template, "a shared table has no {userId}")
    return text


def check_template_pair(shared: str, user: str) -> None:
    if shared.count("/") == user.count("/"):
        raise InvalidParameterError(
            f"The shared template {shared!r} and the user template {user!r} have the same "
            "depth, so a shared table's directory could be a user's",
            hint="give them different numbers of parts, e.g. '{namespace}/{tableName}' and "
                 "'{namespace}/{tableName}/{userId}'")


def shard_of(user_id: str) -> str:
    return f"{zlib.crc32(user_id.encode()) % SHARDS:02d}"


def render(template: str, namespace: str, table: str, user_id: str) -> str:
    """The directory ``template`` names for one table (and user); every value must be a plain
    name, so no separator, dot or other character reaches the path."""
    values = {"namespace": namespace, "tableName": table, "userId": user_id,
              "shard": shard_of(user_id) if user_id else "00"}
    for name, value in values.items():
        if f"{{{name}}}" in template and not _VALUE.fullmatch(value):
            raise StorageError(f"Cannot place segment files: {{{name}}} = {value!r} is not a "
                               "plain name", hint="names use letters, digits and _")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def is_within(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def resolve_base(text: str, data_dir: Path | None) -> Path:
    """The absolute, link-resolved directory a BASE_DIRECTORY names (see the module rules)."""
    if not text or "\x00" in text or len(text) > 4096:
        raise InvalidParameterError("The storage PATH / BASE_DIRECTORY is empty or invalid",
                                    hint="give an absolute directory, or one relative to the "
                                         "data directory")
    given = Path(text)
    if not given.is_absolute():
        if data_dir is None:
            raise InvalidParameterError(
                f"The storage directory {text!r} is relative, but this database is ':memory:' "
                "and has no data directory", hint="give an absolute directory")
        if ".." in given.parts:
            raise InvalidParameterError(
                f"The storage directory {text!r} leaves the data directory ('..')",
                hint="give an absolute directory, or a directory inside the data directory")
        given = data_dir / given
    return real(given)


def check_base(base: Path, data_dir: Path | None, other_bases: list[Path]) -> None:
    """Refuse a base directory that would mix its files with the catalog's, another storage's
    or another data directory's."""
    def refuse(why: str) -> InvalidParameterError:
        return InvalidParameterError(f"Cannot use {base} as a storage directory: {why}",
                                     hint="choose a new or empty directory of its own")

    if data_dir is not None:
        data = real(data_dir)
        if is_within(data, base):
            raise refuse("it is or contains the data directory (the catalog's files)")
        for sub in RESERVED_SUBDIRS:
            if is_within(base, data / sub):
                raise refuse(f"it lies inside {data / sub}, which the database manages")
    for other in other_bases:
        if is_within(base, other) or is_within(other, base):
            raise refuse(f"it overlaps the directory of another storage ({other})")
    mine = real(data_dir) if data_dir is not None else None
    for parent in [base, *base.parents]:
        if parent != mine and (parent / "kalam.sqlite").exists():
            raise refuse(f"{parent} is another Kalam data directory")
    if base.exists() and not base.is_dir():
        raise refuse("it is a file")
