"""Where a run's outputs go, checked before any work: a file name that is a folder (or the reverse), a file
that would be replaced unasked, a place that cannot be written, a disk too full to take the results."""

import shutil
import tempfile
from pathlib import Path

from .errors import ResultsExist
from .records import PathLike

MIN_FREE_BYTES = 64 * 2**20  # less free space than this on the target's disk is refused up front


def check_output_file(out: PathLike, what: str, *, overwrite: bool, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Refuse a target for `what` that is a folder, exists (unless `overwrite`), or cannot be written."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out}: a folder, not a file name for {what} (e.g. {out / 'results.csv'})")
    if out.exists() and not overwrite:
        raise ResultsExist("{out} exists; pass {overwrite} to replace it", out=out)
    _check_writable(out.parent, out, what, min_free_bytes)


def check_output_folder(out: PathLike, what: str, *, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Refuse a folder for `what` that is a file, or that cannot be made or written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: a file, not a folder for {what}")
    _check_writable(out, out, what, min_free_bytes)


def _check_writable(folder: Path, target: Path, what: str, min_free_bytes: int) -> None:
    """Write a scratch file where `folder` (or, not made yet, its nearest existing parent) is, and look at the
    free space there: a read-only place or a full disk is named before any work, not at the end."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{target}: cannot hold {what}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise PermissionError(f"{target}: cannot write {what} there ({existing}: {exc.strerror or exc})") from None
    free = shutil.disk_usage(existing).free
    if free < min_free_bytes:
        raise OSError(f"{target}: the disk holding {existing} has {free / 2**20:.1f} MiB free, under the "
                      f"{min_free_bytes / 2**20:.0f} MiB a run needs for {what}")
