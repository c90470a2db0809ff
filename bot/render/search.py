"""`/callsearch`'s answer: the best matches, each with when, whom, which agent, how it
ended, a highlighted snippet and a link to its card, and a *More* button for the next page.

Snippets come from the store with each match between the bytes 0x02 and 0x03, which stored
text never holds; the text is escaped first and only then are the markers made bold, so
nothing a caller said can format the answer or forge a highlight."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.input.phones import mask_numbers, show_phone
from bot.render.blocks import Message, mrkdwn_safe, said, slack_date, status_words, to_blocks
from bot.render.catalog import DEFAULT_LANGUAGE, counted, words
from bot.render.words import count_words
from storage.models import SearchHit

ACTION_SEARCH_MORE = "search_more"
PAGE = 10
SNIPPET_LIMIT = 400
AGENT_LIMIT = 60
VALUE_LIMIT = 2000  # a button's value, at most


def more_value(text: str, offset: int) -> str | None:
    """The More button's value: the search as typed and where the next page starts (None
    when the text is too long to carry: the person types it again with a narrower ask)."""
    value = json.dumps({"q": text, "o": offset}, ensure_ascii=False)
    return value if len(value) <= VALUE_LIMIT else None


def read_more_value(value: str) -> tuple[str, int] | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("q"), str) or not isinstance(
            data.get("o"), int) or not 0 <= data["o"] <= 10_000:
        return None
    return data["q"], data["o"]


def highlighted(snippet: str, *, show_full_numbers: bool = False) -> str:
    """A snippet as mrkdwn: escaped, numbers masked, each match in bold."""
    text = snippet if show_full_numbers else mask_numbers(snippet)
    text = mrkdwn_safe(text.replace("*", "∗"))[:SNIPPET_LIMIT]
    out, open_ = [], False
    for ch in text:
        if ch == "\x02" and not open_:
            out.append("*")
            open_ = True
        elif ch == "\x03" and open_:
            out.append("*")
            open_ = False
        elif ch not in "\x02\x03":
            out.append(ch)
    if open_:
        out.append("*")
    return "".join(out).replace("**", "")


def hit_text(hit: SearchHit, permalink: str | None, *, show_full_numbers: bool,
             lang: str = DEFAULT_LANGUAGE) -> str:
    call = hit.call
    number = show_phone(call.other_number, full=show_full_numbers)
    agent = said(call.agent_name or call.agent_id or words(lang, "home.default_agent"),
                 AGENT_LIMIT, show_full_numbers=show_full_numbers)
    head = " · ".join([slack_date(call.created_at), f"*{number}*", agent,
                       status_words(call.status, lang)])
    if call.successful is not None:
        head += " · " + words(lang, "search.successful" if call.successful
                              else "search.unsuccessful")
    line = head
    if hit.snippet:
        line += "\n> " + highlighted(hit.snippet, show_full_numbers=show_full_numbers)
    if permalink:
        line += f"\n<{permalink}|{words(lang, 'search.open_card')}>"
    return line


def search_message(text: str, words_searched: str, hits: Sequence[SearchHit], *, offset: int,
                   more: bool, permalinks: Mapping[str, str], show_full_numbers: bool = False,
                   by_number: bool = False, lang: str = DEFAULT_LANGUAGE) -> Message:
    """The answer to `/callsearch <text>`: one page of hits, best first."""
    shown = said(words_searched, 100, show_full_numbers=show_full_numbers)
    if not hits:
        key = "search.none_more" if offset else "search.none"
        return Message(text=words(lang, key, words=shown), blocks=to_blocks([SectionBlock(
            text=MarkdownTextObject(text=words(lang, key, words=shown)))]))
    title = counted(lang, "search.title", len(hits), count=count_words(len(hits), lang),
                    words=shown, first=count_words(offset + 1, lang),
                    last=count_words(offset + len(hits), lang))
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=f"*{title}*"))]
    for hit in hits:
        link = permalinks.get(hit.call.call_id or "")
        blocks.append(SectionBlock(text=MarkdownTextObject(text=hit_text(
            hit, link, show_full_numbers=show_full_numbers, lang=lang)[:3000])))
    if by_number:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=words(lang, "search.by_number"))]))
    value = more_value(text, offset + len(hits)) if more else None
    if value is not None:
        blocks.append(ActionsBlock(elements=[ButtonElement(
            text=words(lang, "search.more"), action_id=ACTION_SEARCH_MORE, value=value)]))
    return Message(text=title, blocks=to_blocks(blocks))


def short_words(searched: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """Every word is under three letters: the index cannot look any of them up."""
    return words(lang, "search.short_word", words=said(searched, 100))
