"""Parse a report page with the standard library's HTML parser (test support)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from html.parser import HTMLParser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Page:
    title: str = ""
    sections: dict[str, str] = field(default_factory=dict)  # id -> visible text
    headings: dict[str, str] = field(default_factory=dict)  # section id -> h2 text
    images: dict[str, str] = field(default_factory=dict)  # img id -> src
    tables: dict[str, list[list[str]]] = field(default_factory=dict)  # id -> body rows
    metas: list[dict] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # every src/href value
    tags: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.section: str | None = None
        self.table: str | None = None
        self.in_body = False
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.in_h2 = False
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.page.tags.append(tag)
        for key in ("src", "href"):
            if key in a:
                self.page.urls.append(a[key])
        if tag == "meta":
            self.page.metas.append(a)
        elif tag == "title":
            self.in_title = True
        elif tag == "section":
            self.section = a.get("id")
            self.page.sections[self.section] = ""
        elif tag == "h2":
            self.in_h2 = True
        elif tag == "img":
            self.page.images[a.get("id")] = a.get("src", "")
        elif tag == "table":
            self.table = a.get("id")
            self.page.tables[self.table] = []
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        elif tag == "section":
            self.section = None
        elif tag == "h2":
            self.in_h2 = False
        elif tag == "tbody":
            self.in_body = False
        elif tag == "td" and self.cell is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.page.tables[self.table].append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.in_title:
            self.page.title += data
        if self.section is not None:
            self.page.sections[self.section] += data
            if self.in_h2:
                self.page.headings[self.section] = self.page.headings.get(self.section, "") + data
        if self.cell is not None:
            self.cell.append(data)


def parse(html_text: str) -> Page:
    parser = _Parser()
    parser.feed(html_text)
    parser.close()
    return parser.page


def png_size(src: str) -> tuple[int, int]:
    """(width, height) of a base64 PNG data URL; raises if it is not one."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    raw = base64.b64decode(src[len(prefix) :], validate=True)
    assert raw[:8] == PNG_SIGNATURE
    assert raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])
