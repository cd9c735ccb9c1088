"""The one error type that the CLI turns into a one-line message and exit code 2."""


class ClipagError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""
