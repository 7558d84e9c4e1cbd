"""Writing a whole CSV table the user asked for (measurements.csv, matched.csv): refused up front when it
would replace a file unasked or names a folder, and put in place only when whole."""

import csv
import os
from pathlib import Path
from typing import Dict, List, Sequence

from .errors import ResultsExist
from .records import PathLike


def check_table_target(out: PathLike, what: str, *, overwrite: bool) -> None:
    """Refuse, before any work, a target that would replace a file unasked, or a folder."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out}: a folder, not a file name for {what}")
    if out.exists() and not overwrite:
        raise ResultsExist("{out} exists; pass {overwrite} to replace it", out=out)


def write_table(out: PathLike, columns: Sequence[str], rows: List[Dict[str, object]]) -> None:
    """The table in place only when whole: a failed write leaves no half file under its name."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, out)
