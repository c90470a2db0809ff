"""Slack messages as terminal text: what a channel would show, for `callbot demo`.

Pure functions from Block Kit (and mrkdwn) to lines: `*bold*`, `_italic_`, `~strike~` and
`code` lose their marks, links show their label, `<@U…>` and `<#C…>` the names given (else
the id), date tokens the time they stand for, emoji shortcodes a symbol (or, for a terminal
that cannot print one, a word), section fields `Name: value`, buttons `[ Label ]`.

Also the progress lines of `callbot import` and `callbot export` (`progress_line`,
`count`): text only, the CLI decides where and how often to print them.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

# Shortcodes the app's messages use, and a few common ones, as symbols.
EMOJI: dict[str, str] = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔",
    "x": "❌",
    "warning": "⚠",
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "telephone_receiver": "📞",
    "phone": "☎",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "grey_question": "❔",
    "question": "❓",
    "page_facing_up": "📄",
    "large_green_circle": "🟢",
    "red_circle": "🔴",
    "checkered_flag": "🏁",
    "test_tube": "🧪",
    "studio_microphone": "🎙",
    "smiley": "😃",
    "slightly_frowning_face": "🙁",
    "neutral_face": "😐",
    "memo": "📝",
    "mailbox": "📫",
    "information_source": "ℹ",
    "inbox_tray": "📥",
    "bar_chart": "📊",
    "bell": "🔔",
    "tada": "🎉",
    "wave": "👋",
}
# The same, in words, for a terminal that cannot print the symbols.
EMOJI_WORDS: dict[str, str] = {
    "white_check_mark": "[yes]",
    "heavy_check_mark": "[ok]",
    "x": "[no]",
    "warning": "[!]",
    "hourglass_flowing_sand": "[...]",
    "hourglass": "[...]",
    "telephone_receiver": "[call]",
    "no_entry": "[refused]",
    "no_entry_sign": "[not connected]",
    "grey_question": "[?]",
    "question": "[?]",
    "large_green_circle": "[live]",
    "checkered_flag": "[ended]",
    "test_tube": "[simulated]",
    "smiley": ":)",
    "slightly_frowning_face": ":(",
    "neutral_face": ":|",
}

_LINK = re.compile(r"<([^<>\n]*)>")
_EMOJI = re.compile(r":([a-z0-9_+'-]*[a-z][a-z0-9_+'-]*):")
_CODE = re.compile(r"```(.*?)```|`([^`\n]+)`", re.DOTALL)
# Slack reads a mark only at word edges, around text that does not start or end with space.
_MARKS = [
    re.compile(rf"(?<![A-Za-z0-9{m}]){re.escape(m)}(?=\S)([^{m}\n]*?\S){re.escape(m)}"
               rf"(?![A-Za-z0-9{m}])")
    for m in ("*", "_", "~")
]
_DATE_TOKENS = {
    "{date_num}": "%Y-%m-%d",
    "{date}": "%B %d, %Y",
    "{date_short}": "%b %d, %Y",
    "{date_long}": "%A, %B %d, %Y",
    "{date_pretty}": "%B %d, %Y",
    "{date_short_pretty}": "%b %d, %Y",
    "{date_long_pretty}": "%A, %B %d, %Y",
    "{time}": "%H:%M",
    "{time_secs}": "%H:%M:%S",
}
_INVISIBLE = str.maketrans("", "", "\u2060\u200b")


@dataclass(frozen=True)
class Style:
    """How to show what the text refers to: names for user and channel ids, the time zone
    of dates, symbols or words for emoji, and the width to wrap at (None: no wrapping)."""

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)
    zone: tzinfo = UTC
    symbols: bool = True
    width: int | None = None


PLAIN = Style()


def mrkdwn(text: str, style: Style = PLAIN) -> str:
    """One mrkdwn text as it reads in Slack, without the markup."""
    parts: list[str] = []
    pos = 0
    for match in _CODE.finditer(text):  # code is shown as typed: no marks, links or emoji
        parts.append(_prose(text[pos:match.start()], style))
        code = match.group(1) if match.group(1) is not None else match.group(2)
        parts.append(_entities(code))
        pos = match.end()
    parts.append(_prose(text[pos:], style))
    return "".join(parts).translate(_INVISIBLE)


def _prose(text: str, style: Style) -> str:
    text = _LINK.sub(lambda m: _reference(m.group(1), style), text)
    for mark in _MARKS:
        text = mark.sub(r"\1", text)
    text = _EMOJI.sub(lambda m: emoji(m.group(1), style), text)
    return _entities(text)


def _entities(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def emoji(name: str, style: Style = PLAIN) -> str:
    """A shortcode's symbol, or its word; an unknown one reads as its name."""
    if style.symbols and name in EMOJI:
        return EMOJI[name]
    return EMOJI_WORDS.get(name) or f"[{name.replace('_', ' ')}]"


def _reference(inner: str, style: Style) -> str:
    """What `<…>` shows: a person, a channel, a date, a broadcast, or a link's label."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return "@" + (style.users.get(user) or label or user)
    if target.startswith("#"):
        channel = target[1:]
        return "#" + (style.channels.get(channel) or label or channel)
    if target.startswith("!date^"):
        return _date(target, label, style)
    if target.startswith("!subteam^"):
        return label or "@group"
    if target.startswith("!"):
        return "@" + target[1:].split("^", 1)[0]
    return _entities(label) if label else target


def _date(target: str, fallback: str, style: Style) -> str:
    """`<!date^EPOCH^FORMAT|fallback>` in the style's zone (the fallback if unreadable)."""
    pieces = target.split("^")
    try:
        moment = datetime.fromtimestamp(int(pieces[1]), style.zone)
    except (IndexError, ValueError, OverflowError, OSError):
        return fallback
    shown = pieces[2] if len(pieces) > 2 else "{date_num} {time}"
    for token, pattern in _DATE_TOKENS.items():
        shown = shown.replace(token, moment.strftime(pattern))
    return shown


# -- blocks --------------------------------------------------------------------------------


def _text_of(obj: Any, style: Style) -> str:
    """A text object (mrkdwn or plain_text) as it reads."""
    if not isinstance(obj, Mapping):
        return ""
    text = str(obj.get("text") or "")
    if obj.get("type") == "plain_text":
        return _EMOJI.sub(lambda m: emoji(m.group(1), style), text) if obj.get("emoji", True) \
            else text
    return mrkdwn(text, style)


def _field(obj: Any, style: Style) -> str:
    """`*Name*\\nvalue` as `Name: value` (further lines joined with `; `)."""
    text = _text_of(obj, style)
    head, sep, rest = text.partition("\n")
    return f"{head}: {'; '.join(rest.splitlines())}" if sep else text


def _element(element: Any, style: Style) -> str:
    """An interactive or context element, inline."""
    if not isinstance(element, Mapping):
        return ""
    kind = element.get("type")
    if kind == "button":
        return f"[ {_text_of(element.get('text'), style)} ]"
    if kind == "image":
        return f"[image: {element.get('alt_text') or ''}]"
    if kind in ("mrkdwn", "plain_text"):
        return _text_of(element, style)
    placeholder = _text_of(element.get("placeholder"), style)
    return f"[ {placeholder or str(kind or 'input').replace('_', ' ')} ▾ ]" if style.symbols \
        else f"[ {placeholder or str(kind or 'input').replace('_', ' ')} v ]"


def _rich_text(element: Any) -> str:
    """The words of a rich_text element tree."""
    if not isinstance(element, Mapping):
        return ""
    if element.get("type") == "text":
        return str(element.get("text") or "")
    if element.get("type") == "link":
        return str(element.get("text") or element.get("url") or "")
    return "".join(_rich_text(e) for e in element.get("elements") or [])


def block_lines(block: Mapping[str, Any], style: Style = PLAIN) -> list[str]:
    """One block as lines; a block of a kind not shown in messages gives none."""
    kind = block.get("type")
    lines: list[str] = []
    if kind == "header":
        rule = "──" if style.symbols else "--"
        lines.append(f"{rule} {_text_of(block.get('text'), style)} {rule}")
    elif kind == "section":
        if block.get("text"):
            lines += _text_of(block["text"], style).splitlines()
        lines += [_field(f, style) for f in block.get("fields") or []]
        accessory = block.get("accessory")
        if accessory:
            lines.append(_element(accessory, style))
    elif kind == "context":
        lines.append("  ".join(_element(e, style) for e in block.get("elements") or []))
    elif kind == "divider":
        lines.append(("─" if style.symbols else "-") * 24)
    elif kind == "actions":
        lines.append("  ".join(_element(e, style) for e in block.get("elements") or []))
    elif kind == "image":
        lines.append(f"[image: {block.get('alt_text') or ''}]")
    elif kind == "rich_text":
        lines += _rich_text(block).splitlines()
    elif kind == "input":
        lines.append(f"{_text_of(block.get('label'), style)}: "
                     f"{_element(block.get('element'), style)}")
    return lines


def message_lines(message: Mapping[str, Any], style: Style = PLAIN) -> list[str]:
    """A message (a chat.postMessage / chat.update / response_url body) as lines: its
    blocks when it has any (Slack then shows only them), else its text; files by title."""
    lines: list[str] = []
    blocks = message.get("blocks")
    if isinstance(blocks, list) and blocks:
        for block in blocks:
            if isinstance(block, Mapping):
                lines += block_lines(block, style)
    elif message.get("text"):
        lines += mrkdwn(str(message["text"]), style).splitlines()
    for file in message.get("files") or []:
        if isinstance(file, Mapping):
            lines.append(f"[file: {file.get('title') or file.get('name') or 'untitled'}]")
    return wrap(lines, style.width)


def wrap(lines: Iterable[str], width: int | None) -> list[str]:
    """Each line wrapped at `width`, continuation lines indented like the line itself."""
    if width is None:
        return list(lines)
    out: list[str] = []
    for line in lines:
        indent = line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=True,
                             break_on_hyphens=False) or [""]
    return out


# -- progress of `callbot import` / `callbot export` -------------------------------------------

BAR_WIDTH = 24


def count(n: int) -> str:
    """A count people read at a glance: 12,500."""
    return f"{n:,}"


def progress_line(label: str, done: int, total: int | None, unit: str, detail: str = "",
                  *, ascii_only: bool = False, width: int = BAR_WIDTH) -> str:
    """`Importing [#########·········] 1,000 / 2,500 calls · page 1`: a bar when the total
    is known (Retell may not say), else the count alone."""
    tail = f" · {detail}" if detail else ""
    if not total:
        return f"{label} {count(done)} {unit}{tail}"
    filled = min(width, done * width // total)
    empty = "-" if ascii_only else "·"
    bar = "#" * filled + empty * (width - filled)
    return f"{label} [{bar}] {count(done)} / {count(total)} {unit}{tail}"
