"""A Parquet log writer process killed by SIGKILL right after its first store, before it
answers (the widest window for a double store): `test_predlog_writer.py` runs it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from mlsd.predlog import parquet, writer_child

_real_store = parquet.store_tables


def _store_then_die(*args: Any, **kwargs: Any) -> None:
    _real_store(*args, **kwargs)
    marker = Path(os.environ["MLSD_TEST_DIE_MARKER"])
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":  # (pytest imports every module to look for doctests)
    parquet.store_tables = _store_then_die  # type: ignore[assignment]  # serve() looks it up
    sys.exit(writer_child.main(sys.argv[1:]))
