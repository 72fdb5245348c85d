"""Checking the ``path`` given to ``connect()`` and turning failures to open it into coded
errors: an empty path (it would mean the current directory), a regular file, a directory that
cannot be created or written, a catalog that is not a SQLite database."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from kalam_engine.model.errors import (
    InvalidParameterError,
    KalamError,
    MissingFileError,
    StorageError,
)
from kalam_engine.storage.catalog_file import catalog_error

MEMORY = ":memory:"
CATALOG_FILE = "kalam.sqlite"


def data_path(path: object) -> Path | None:
    """The data directory ``path`` names, or None for ``":memory:"``."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(
            f"The data directory must be a path, not {type(path).__name__}",
            hint="give a directory, e.g. connect('./data'), or ':memory:'")
    text = os.fspath(path)
    if isinstance(text, bytes):
        raise InvalidParameterError("The data directory must be a text path, not bytes",
                                    hint="decode it first, e.g. path.decode()")
    if text == MEMORY:
        return None
    if not text.strip():
        raise InvalidParameterError(
            "The data directory path is empty",
            hint="give a directory, e.g. connect('./data'), or ':memory:' for a throw-away "
                 "database; an empty path would silently mean the current directory")
    return Path(text)


def prepare_writable(directory: Path) -> None:
    """Create ``directory`` if needed; it must be a directory."""
    if directory.exists() and not directory.is_dir():
        raise InvalidParameterError(
            f"'{directory}' is a file, not a data directory",
            hint="give the directory that holds kalam.sqlite, or a new one")
    with open_errors(directory):
        directory.mkdir(parents=True, exist_ok=True)


def check_readable(directory: Path, catalog_file: str) -> None:
    """A read-only engine needs an existing database: it creates nothing."""
    if directory.exists() and not directory.is_dir():
        raise InvalidParameterError(
            f"'{directory}' is a file, not a data directory",
            hint="give the directory that holds kalam.sqlite")
    if not (directory / catalog_file).is_file():
        raise MissingFileError(
            f"There is no Kalam database in '{directory}' ({catalog_file} is missing)",
            hint="check the path; read_only=True opens existing databases only (open it once "
                 "without read_only=True to create one)")


@contextlib.contextmanager
def open_errors(directory: Path) -> Iterator[None]:
    """Turn OS and SQLite errors raised while opening ``directory`` into StorageErrors."""
    try:
        yield
    except KalamError:
        raise
    except PermissionError as exc:
        raise StorageError(
            f"Cannot use data directory '{directory}': permission denied ({exc.strerror})",
            hint="choose a directory you may write, or open it with read_only=True") from exc
    except (NotADirectoryError, FileExistsError) as exc:
        raise InvalidParameterError(
            f"Cannot use data directory '{directory}': a part of the path is a file "
            f"({exc.strerror})", hint="give a path whose parents are directories") from exc
    except sqlite3.DatabaseError as exc:
        raise catalog_error(directory / CATALOG_FILE, exc) from exc
    except OSError as exc:
        raise StorageError(f"Cannot use data directory '{directory}': {exc}",
                           hint="check the path, its permissions and free disk space") from exc
