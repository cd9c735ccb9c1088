"""`clipag serve`: a local web page where guides draw side by side (`pip install 'clipag[ui]'`).

runs.py holds what the page does (checked requests, guides stepped side by side, results written as the
CLI writes them, the gallery) with no web framework; app.py builds the Gradio page on it.
"""
from .runs import Frame, Limits, Request, past_results, side_by_side


def build_app(*args, **kwargs):
    """The Gradio page (see app.build_app); needs the `ui` extra."""
    import importlib.util
    if importlib.util.find_spec("gradio") is None:
        from ..errors import ClipagError
        raise ClipagError("clipag serve needs Gradio: pip install 'clipag[ui]'")
    from .app import build_app as build
    return build(*args, **kwargs)


__all__ = ["Frame", "Limits", "Request", "build_app", "past_results", "side_by_side"]
