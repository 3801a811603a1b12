"""User-facing errors: the CLI prints these as one line and exits non-zero, no traceback."""


class BrushworkError(Exception):
    """A mistake in the user's input (bad path, empty folder, wrong option), not a bug."""


class TrainingDiverged(BrushworkError):
    """A loss became NaN or infinite; training stopped before writing a bad checkpoint."""


class WeightsUnavailable(BrushworkError):
    """Pretrained weights neither cached nor given as a file. ``option`` is how to pass a local
    file; each command sets the name of its own option (``--vgg-weights PATH``, ...)."""

    def __init__(self, what: str, option: str = "a local weights file"):
        super().__init__(what)
        self.what, self.option = what, option

    def __str__(self) -> str:
        return f"{self.what}, or pass a local file with {self.option}"
