"""Reasoning blocks removed from responses before they are parsed, as lmms-eval's command line does.

lmms-eval's ``--reasoning_tags`` (``lmms_eval/__main__.py``) defaults to ``[["<think>", "</think>"], ["<analysis>",
"</analysis>"]]``; ``evaluate()`` in ``lmms_eval/evaluator.py`` passes every filtered response through
``strip_reasoning_tags`` (``lmms_eval/api/reasoning.py``) before ``process_results`` sees it, for every task that
does not set its own ``reasoning_tags`` (MVBench, Video-MME and MLVU set none). The raw text is kept beside it as
``resps``. Behaviour, read at commit 75571cfe and reproduced by :func:`strip_reasoning_blocks`:

* tag pairs are handled one after the other, in the order given; tags match case-sensitively;
* while the opening tag occurs and a closing tag follows it, the text from the first opening tag to the first
  closing tag after it is cut out (so in a nested block the outer closing tag survives the first cut);
* then, when a closing tag remains and no opening tag does (a chat template that put the opening tag in the prompt,
  or the leftover of a nested block), everything up to and including the last closing tag is dropped;
* an opening tag with no closing tag after it is left as it is;
* finally the text is stripped of surrounding whitespace, always: a whitespace-only response becomes ``""``.
"""

from __future__ import annotations

from typing import Sequence

#: lmms-eval's command-line default for ``--reasoning_tags``.
REASONING_TAGS: tuple[tuple[str, str], ...] = (("<think>", "</think>"), ("<analysis>", "</analysis>"))


def _cut_blocks(text: str, opening: str, closing: str) -> str:
    """Cut ``opening ... closing`` spans, each from the first opening tag to the first closing tag after it."""
    while True:
        start = text.find(opening)
        end = text.find(closing, start) if start != -1 else -1
        if end == -1:
            return text
        text = text[:start] + text[end + len(closing) :]


def strip_reasoning_blocks(response: str, tag_pairs: Sequence[Sequence[str]] = REASONING_TAGS) -> str:
    """The response with its reasoning blocks removed and surrounding whitespace stripped (see the module text)."""
    text = response
    for opening, closing in tag_pairs:
        text = _cut_blocks(text, opening, closing)
        if closing in text and opening not in text:
            text = text[text.rfind(closing) + len(closing) :]
    return text.strip()


def describe_reasoning_filter() -> dict[str, object]:
    """What a run records about the response filter."""
    return {
        "reasoning_tags": [list(pair) for pair in REASONING_TAGS],
        "rule": "lmms-eval's strip_reasoning_tags (command-line default), then surrounding whitespace stripped",
    }
