"""One picture of the published grid (docs/results.md): accuracy against N for every sweep in a results folder.

Reads the `sweep.json` files that `scripts/results.sh` leaves under `docs/results/<data>/<sweep>/` and
draws one panel per dataset: the `lm` sweep with error bars over seeds, the `cls` sweep, each `--select`
method, the longer-training check, and the baselines as horizontal lines.
Usage: python scripts/results_figure.py [docs/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from edgecut.sweeps.sweep_report import BASELINE_NAMES, BASELINE_STYLE  # noqa: E402

STYLE = {  # sweep folder -> label, marker, colour
    "lm": ("lm setting, first N (mean ± sd)", "o", "tab:blue"),
    "cls": ("cls setting, first N", "s", "tab:purple"),
    "select-block-influence": ("lm, block-influence layers", "^", "tab:orange"),
    "select-angular": ("lm, angular layers", "v", "tab:red"),
    "lm-5-epochs": ("lm, first N, 5 epochs", "D", "tab:cyan"),
}


def draw(root: Path) -> Path:
    datasets = sorted(p for p in root.iterdir() if (p / "lm" / "sweep.json").is_file())
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.4), dpi=120, squeeze=False)
    for ax, folder in zip(axes[0], datasets, strict=True):
        ticks: set[int] = set()
        for name, (label, marker, colour) in STYLE.items():
            path = folder / name / "sweep.json"
            if not path.is_file():
                continue
            rows = json.loads(path.read_text())["rows"]
            xs = [r["layers"] for r in rows]
            ticks.update(xs)
            ax.errorbar(
                xs,
                [r["accuracy_mean"] * 100 for r in rows],
                yerr=[r["accuracy_sd"] * 100 for r in rows],
                marker=marker,
                color=colour,
                capsize=3,
                linestyle="-" if name == "lm" else ":",
                label=label,
            )
        for b in json.loads((folder / "lm" / "sweep.json").read_text())["baselines"]:
            colour, style = BASELINE_STYLE.get(b["name"], ("black", ":"))
            name = BASELINE_NAMES.get(b["name"], b["name"])
            ax.axhline(b["accuracy_mean"] * 100, color=colour, linestyle=style, linewidth=1.2, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
        ax.set_xlabel("layers kept (N) of 30")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"SmolLM2-135M on {folder.name}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = root / "results.png"
    fig.savefig(out)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(draw(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results")))
