"""One self-contained HTML document: inline CSS, inline SVG, no script, no request.

The page carries a Content-Security-Policy (``default-src 'none'``) so that even
a browser that is online fetches nothing for it: no CDN, no font, no image
from elsewhere; a shared file opens the same offline. :func:`document` wraps
the parts, :func:`esc` escapes text, :func:`table` makes a plain table,
:func:`rich_html` turns a rich renderable (the terminal report, the verdict)
into inline-styled HTML. :func:`write_page` writes the file atomically (never
through a link it did not create). Formatting only.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence

from rich.console import Console, RenderableType
from rich.terminal_theme import DEFAULT_TERMINAL_THEME

from registry.delivery.atomic_file import write_atomic

__all__ = ["CSP", "document", "esc", "figure", "rich_html", "table", "write_page"]

#: Nothing may be fetched: styles and images live inline in the page.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 1.5em auto;
       max-width: 1280px; padding: 0 1em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em;
  border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
table.data { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
table.data th, table.data td { padding: 0.2em 0.7em; border-bottom: 1px solid #eee;
  text-align: right; white-space: nowrap; }
table.data th:first-child, table.data td:first-child { text-align: left; }
table.data th { background: #f5f5f7; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.charts figure { flex: 0 1 calc(50% - 1em); }
table.kv td { text-align: left !important; white-space: normal; }
figure { margin: 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
pre.terminal { font-size: 0.8em; line-height: 1.25; overflow-x: auto; background: #fafafa;
  padding: 0.6em; border: 1px solid #eee; }
.note { color: #666; font-size: 0.85em; }
.higher { color: #b00020; font-weight: bold; } .lower { color: #006400; font-weight: bold; }
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def document(title: str, parts: Iterable[str]) -> str:
    """The whole page: head (charset, CSP, style) and body."""
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False, cls: str = "data"
) -> str:
    """A plain table; cells are escaped unless ``raw`` (then they are trusted HTML)."""
    cell = (lambda c: c) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure(name: str, caption: str, svg: str) -> str:
    """One chart: the SVG and its caption, named for finding it (``data-chart``)."""
    return f'<figure data-chart="{esc(name)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def rich_html(renderable: RenderableType, width: int = 120) -> str:
    """A rich renderable as inline-styled ``<pre>`` (the terminal view, in the page)."""
    console = Console(record=True, width=width, file=open(os.devnull, "w"))  # noqa: SIM115
    try:
        console.print(renderable)
        return console.export_html(
            inline_styles=True,
            theme=DEFAULT_TERMINAL_THEME,
            code_format='<pre class="terminal"><code>{code}</code></pre>',
        )
    finally:
        console.file.close()


def write_page(path: str | os.PathLike[str], text: str) -> None:
    """Write the page atomically (tmp, fsync, rename: a link at ``path`` is replaced)."""
    write_atomic(path, text.encode("utf-8"))
