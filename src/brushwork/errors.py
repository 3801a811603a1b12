"""User-facing errors: the CLI prints these as one line and exits non-zero, no traceback."""


class BrushworkError(Exception):
    """A mistake in the user's input (bad path, empty folder, wrong option), not a bug."""


class TrainingDiverged(BrushworkError):
    """A loss became NaN or infinite; training stopped before writing a bad checkpoint."""
