"""A reproduced figure or table as a page: FOLDER/index.html and its Markdown twin FOLDER/index.md.

A Figure holds panels laid out as the paper lays its figure out; a panel is a grid of cells (a picture
with a line of text under it), rows and columns labelled. Image paths are relative to the page, so a
folder can be moved or published as it is.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..files import atomic_path


@dataclass
class Cell:
    image: Optional[str]  # path relative to the page, or None for a text-only cell
    text: str = ""
    wide: bool = False  # a strip of several frames: shown at its own width


@dataclass
class Panel:
    title: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]  # (row label, one cell per column)


@dataclass
class Figure:
    target: str  # "fig7"
    title: str  # the paper's caption title
    caption: str  # what the figure shows and how it was made here
    panels: list[Panel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings and departures from the paper
    table: Optional[tuple[list[str], list[list[str]]]] = None  # (header, rows) for the tables


def cell(path: str | os.PathLike, page_dir: Path, text: str = "", wide: bool = False) -> Cell:
    return Cell(Path(os.path.relpath(path, page_dir)).as_posix(), text, wide)


def write_page(figure: Figure, page_dir: Path) -> tuple[Path, Path]:
    """Write index.html and index.md for `figure` in `page_dir`; returns both paths."""
    paths = page_dir / "index.html", page_dir / "index.md"
    for path, text in zip(paths, (page_html(figure), page_markdown(figure))):
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths


def write_index(entries: Sequence[tuple[str, str, str]], out_dir: Path) -> tuple[Path, Path]:
    """The `all` page: one line per target, (target, title, link or reason it was not run)."""
    rows = [[target, title, f"[page]({link})" if link.endswith(".md") else link] for target, title, link in entries]
    figure = Figure("all", "CLIPAG supplementary: every figure and table", "Each target's page, made by "
                    "`clipag reproduce all`.", table=(["target", "figure", "page"], rows))
    markdown = page_markdown(figure)
    rows_html = [[target, title, f'<a href="{html.escape(link[:-3])}.html">page</a>' if link.endswith(".md")
                  else html.escape(link)] for target, title, link in entries]
    page = _html_document(figure.title, f"<p>{html.escape(figure.caption)}</p>" + _html_table(
        ["target", "figure", "page"], rows_html, escape=False))
    paths = out_dir / "index.html", out_dir / "index.md"
    for path, text in zip(paths, (page, markdown)):
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths


# ---------------------------------------------------------------- HTML

_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:90em}td,th{padding:4px;text-align:center;"
          "vertical-align:top}img{width:192px;image-rendering:pixelated}img.wide{width:384px}"
          "td div{font-size:small;max-width:14em}.note{color:#a33}table.data td{text-align:right}")


def page_html(figure: Figure) -> str:
    parts = [f"<p>{html.escape(figure.caption)}</p>"]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in figure.notes]
    if figure.table:
        parts.append(_html_table(*figure.table))
    for panel in figure.panels:
        parts.append(f"<h2>{html.escape(panel.title)}</h2>")
        rows = [[label] + [_html_cell(c) for c in cells] for label, cells in panel.rows]
        parts.append(_html_table([""] + panel.columns, rows, escape=False))
    parts.append('<p><a href="settings.json">settings.json</a></p>')
    return _html_document(f"{figure.target}: {figure.title}", "\n".join(parts))


def _html_cell(c: Cell) -> str:
    wide = ' class="wide"' if c.wide else ""
    image = f'<img src="{html.escape(c.image)}"{wide} alt="{html.escape(c.text)}"/>' if c.image else ""
    return f"{image}<div>{html.escape(c.text)}</div>"


def _html_table(header: list[str], rows: list[list[str]], escape: bool = True) -> str:
    esc = html.escape if escape else (lambda s: s)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{"data" if escape else "grid"}"><tr>{head}</tr>{body}</table>'


def _html_document(title: str, body: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"/><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


# ---------------------------------------------------------------- Markdown

def page_markdown(figure: Figure) -> str:
    lines = [f"# {figure.target}: {figure.title}", "", figure.caption, ""]
    lines += [f"> {note}" for note in figure.notes] + ([""] if figure.notes else [])
    if figure.table:
        lines += _md_table(*figure.table) + [""]
    for panel in figure.panels:
        lines += [f"## {panel.title}", ""]
        lines += _md_table([""] + panel.columns, [[_md_escape(label)] + [_md_cell(c) for c in cells]
                                                   for label, cells in panel.rows])
        lines.append("")
    if figure.target != "all":
        lines.append("Settings: [settings.json](settings.json)")
    return "\n".join(lines) + "\n"


def _md_cell(c: Cell) -> str:
    text = _md_escape(c.text)
    return f"![{text}]({c.image})<br>{text}" if c.image else text


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
