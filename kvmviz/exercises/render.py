"""How a question is written: the memslot list the questions share, and the little Markdown the
questions use turned into the HTML the exercise widget shows."""

from __future__ import annotations

import html
import re

from ..inputs.memslots import MemslotLayout

__all__ = ["markdown_to_html", "slot_list"]


def slot_list(layout: MemslotLayout, *, gfns: bool = False) -> str:
    """The memslots as a Markdown list: id, address space, (gfns,) hva range."""
    return "\n".join(
        f"- slot {s.slot} (as_id {s.as_id}): "
        + (f"gfn [{s.base_gfn:#x}, {s.base_gfn + s.npages:#x}) at " if gfns else "")
        + f"hva [{s.hva_start:#x}, {s.hva_end:#x})"
        for s in layout
    )


_INLINE = re.compile(r"`(?P<code>[^`]+)`|\*\*(?P<strong>.+?)\*\*|\*(?P<em>[^*\s][^*]*?)\*")
_BULLET = re.compile(r"^[-*] (?P<item>.*)$")
_NUMBERED = re.compile(r"^(?P<number>\d+)\. (?P<item>.*)$")


def _inline_html(text: str) -> str:
    """``code``, **strong** and *em* spans of one line of text, everything else escaped."""
    out, at = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[at : match.start()]))
        if match["code"] is not None:  # nothing inside code is formatted
            out.append(f"<code>{html.escape(match['code'])}</code>")
        elif match["strong"] is not None:
            out.append(f"<strong>{_inline_html(match['strong'])}</strong>")
        else:
            out.append(f"<em>{_inline_html(match['em'])}</em>")
        at = match.end()
    out.append(html.escape(text[at:]))
    return "".join(out)


def markdown_to_html(text: str) -> str:
    """The little Markdown the questions use, as HTML: what the exercise widget shows.

    Paragraphs (separated by a blank line), ``- `` bullet lists, ``1. `` numbered lists,
    ```code```, ``**strong**`` and ``*em*``; every other character is HTML-escaped, so a hva
    range such as ``[0x1000, 0x2000)`` or an arrow ``->`` shows as typed.

    Examples
    --------
    >>> markdown_to_html("Under **qrwlock**:\\n\\n- request 0 takes `mmu_lock`")
    '<p>Under <strong>qrwlock</strong>:</p><ul><li>request 0 takes <code>mmu_lock</code></li></ul>'
    """
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        # Within a block, consecutive lines of one kind form one paragraph or one list.
        runs: list[tuple[str, list]] = []
        for line in block.splitlines():
            line = line.strip()
            bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
            kind = "ul" if bullet else "ol" if numbered else "p"
            item = (bullet or numbered)["item"] if kind != "p" else line
            if runs and runs[-1][0] == kind:
                runs[-1][1].append((item, numbered))
            else:
                runs.append((kind, [(item, numbered)]))
        for kind, items in runs:
            if kind == "p":
                blocks.append(f"<p>{_inline_html(' '.join(item for item, _ in items))}</p>")
                continue
            first = items[0][1]
            start = f' start="{first["number"]}"' if first and first["number"] != "1" else ""
            lis = "".join(f"<li>{_inline_html(item)}</li>" for item, _ in items)
            blocks.append(f"<{kind}{start}>{lis}</{kind}>")
    return "".join(blocks)
