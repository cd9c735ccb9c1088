"""The one error type that the CLI turns into a one-line message and exit code 2."""


class ClipagError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


SEED_MAX = 2**32 - 1  # numpy's and most tools' seed range; torch and random take any of these


def check_finite(config) -> None:
    """Refuse a settings dataclass holding a NaN or infinite number (it would give a black picture)."""
    import dataclasses
    import math
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        values = value if isinstance(value, (tuple, list)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ClipagError(f"{field.name} must be a finite number, got {value!r}")
        if dataclasses.is_dataclass(value):
            check_finite(value)
