"""What a long command tells its caller as it goes: stages, notes, warnings, bars, training updates.

The library's `Progress` stays silent; the CLI's subclass (`edgecut.terminal.RichProgress`) draws it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Progress:
    """What the pipeline tells its caller as it goes. This base class stays silent (library use); the
    CLI's subclass draws rich status lines and progress bars."""

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        yield

    def note(self, text: str) -> None:
        """A line of detail under the last stage."""

    def warn(self, text: str) -> None:
        """Something the user must not miss (the artifact is still written)."""

    @contextlib.contextmanager
    def counter(self, title: str, total: int) -> Iterator[Callable[[int], None]]:
        """A bar over `total` items; the caller advances it by n."""
        yield lambda n: None

    def training(self, update) -> None:
        """One `edgecut.model.finetune.TrainProgress` (step, loss, latest validation accuracy)."""

    def trained(self, classifier) -> None:
        """The fine-tuned torch classifier, before export (benchmarks time it against the graphs)."""
