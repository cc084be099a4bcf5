"""The visible text of an HTML page, run by run, with the class of the element each run
sits in (what a reader sees, without markup, styles or the title)."""

from __future__ import annotations

from html.parser import HTMLParser

_VOID = frozenset({"meta", "br", "link", "img", "hr", "input"})
_HIDDEN = frozenset({"style", "title", "script", "head"})


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.runs: list[tuple[str, str]] = []
        self._classes: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        self._hidden += tag in _HIDDEN
        self._classes.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        self._hidden -= tag in _HIDDEN
        if self._classes:
            self._classes.pop()

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.runs.append((data.strip(), self._classes[-1] if self._classes else ""))


def text_runs(page: str) -> list[tuple[str, str]]:
    """(text, class of its element) for every visible text run, in document order."""
    parser = _Text()
    parser.feed(page)
    parser.close()
    return parser.runs


def tile(runs: list[tuple[str, str]], label: str) -> tuple[str, str]:
    """(value, class) of the status page's headline figure labelled `label`."""
    i = next(i for i, (text, _) in enumerate(runs) if text == label)
    return runs[i + 1]
