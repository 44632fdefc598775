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
    pass


class ParityError(RuntimeError):
    """The exported graph does not reproduce the torch model within tolerance (a bug, not user input)."""


class ArtifactError(EdgecutError):
    """An artifact directory that is missing, unreadable or not one this edgecut can read."""
