"""Writing a whole CSV table the user asked for (measurements.csv, matched.csv), put in place only when whole
(its target is checked up front by `output_paths.check_output_file`)."""

import csv
import os
from pathlib import Path
from typing import Dict, List, Sequence

from .records import PathLike


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
