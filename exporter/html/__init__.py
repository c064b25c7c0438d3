"""Self-contained HTML pages: ``report --html`` and ``compare --html`` (issue 25).

:mod:`~exporter.html.page` is the document (inline CSS, a Content-Security-Policy
that forbids every request, no script), :mod:`~exporter.html.charts` draws with
matplotlib to inline SVG, :mod:`~exporter.html.report_page` and
:mod:`~exporter.html.compare_page` assemble the two pages. Everything here
only draws numbers that :mod:`registry.compare` and the Report computed.
"""
