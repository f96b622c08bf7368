"""matplotlib without a screen, and one look for every figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"bridge": "#1f77b4", "fixed-250ms": "#ff7f0e", "kcl-1s": "#2ca02c"}


def figure(columns: int = 1, rows: int = 1, width: float = 5.0, height: float = 3.6) -> Any:
    return plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)


def save(fig: Any, path: Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
