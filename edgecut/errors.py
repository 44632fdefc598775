"""The errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class EdgecutError(ValueError):
    """A problem with the user's input or environment; the message says what to do."""


class ModelNotFoundError(EdgecutError):
    pass


class DataError(EdgecutError):
    pass


class TargetError(EdgecutError):
    pass


class ProviderUnavailableError(TargetError):
    """The target asks for an execution provider this ONNX Runtime cannot run."""


class OutputExistsError(EdgecutError):
    """The output is taken, or is something `--force` may not replace."""


class OutputNotWritableError(EdgecutError):
    """No directory can be created where the output goes (read-only, a file in the path, /proc)."""


class ParityError(RuntimeError):
    """The exported graph does not reproduce the torch model within tolerance (a bug, not user input)."""


class ArtifactError(EdgecutError):
    """An artifact directory that is missing, unreadable or not one this edgecut can read."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, CI cancellation, docker stop), raised where Ctrl-C would be: the same cleanup runs.

    The CLI reports it in one line and exits 143 (128 + SIGTERM), as a shell does for a killed command.
    """


class QualityError(ParityError):
    """No int8/fp16 graph stays within the target's `max_accuracy_drop` of fp32 on the validation split.

    Exit 1 like a parity failure: the user's input is valid, but the artifact they asked for would be
    worse than the target promises, and edgecut ships nothing rather than a silent fp32 fallback.
    """
