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


def check_types(settings, fix: str) -> None:
    """Refuse the first field of a settings dataclass whose value is not of its annotated type.

    Settings read from JSON or YAML arrive untyped; a string where a number belongs would otherwise
    fail deep inside the computation. `fix` ends the message ("fix the recipe")."""
    import dataclasses
    import typing
    hints = typing.get_type_hints(type(settings))
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if not _is_a(value, hints[field.name]):
            raise ClipagError(f"setting {field.name.replace('_', '-')} must be {_kind(hints[field.name])}, "
                              f"got {value!r}; {fix}")


def _is_a(value, hint) -> bool:
    import typing
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(_is_a(value, arg) for arg in args)
    if origin in (list, tuple):
        return isinstance(value, origin) and all(_is_a(v, args[0]) for v in value)
    if hint in (int, float) and isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, type(None) if hint is None else hint)


def _kind(hint) -> str:
    import typing
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        return " or ".join(_kind(arg) for arg in args)
    if typing.get_origin(hint) in (list, tuple):
        return f"a list of {_kind(args[0])}s"
    return {int: "an integer", float: "a number", str: "text", bool: "true or false",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))
