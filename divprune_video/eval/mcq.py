"""Multiple-choice answer extraction, behaving exactly like lmms-eval's two extractors.

* :func:`extract_mcq_answer` follows ``lmms_eval/tasks/_task_utils/mcq_extract.py`` (used by Video-MME and MLVU):
  every way a choice letter can appear in the response is a candidate with a priority, the highest priority wins
  and, among equals, the occurrence nearest the end.
* :func:`mvbench_normalize` and :func:`mvbench_match` follow ``mcq_acc`` in ``lmms_eval/tasks/mvbench/utils.py``:
  an ``"X. text"`` line gives its letter; otherwise VQA-style punctuation clean-up and the first standalone letter
  A-E.

Both are written from reading lmms-eval at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3; their quirks are kept on
purpose (see docs/benchmarks.md) so that a score here equals a score there.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

DEFAULT_CHOICES = ("A", "B", "C", "D", "E", "F", "G", "H")

# Characters trimmed from both ends of the response, one character kind after the other (in this order).
_EDGE_MARKS = (",", ".", "!", "?", ";", ":", "'", '"')

# Phrases after which the first occurrence of each choice letter is a candidate (lmms-eval's list, same order).
ANSWER_PHRASES = (
    "the answer is",
    "answer is",
    "the correct answer is",
    "correct answer is",
    "the best answer is",
    "best answer is",
    "the correct option is",
    "correct option is",
    "the best option is",
    "best option is",
    "the choice is",
    "choice is",
    "the correct choice is",
    "correct choice is",
    "i choose",
    "i select",
    "i pick",
    "my answer is",
    "my choice is",
    "옵션",
    "정답은",
    "답은",
    "답:",  # Korean
    "答案是",
    "答案为",
    "选",  # Chinese
    "答えは",  # Japanese
)

# Candidate formats: name -> (priority, how the letter is written). Higher priority wins.
_MARKED_FORMATS = (
    ("parentheses", 6, "({})"),
    ("period", 5, "{}."),
    ("colon", 4, "{}:"),
    ("right_paren", 3, "{})"),
    ("space", 2, "{} "),
)
_PHRASE_PRIORITY = 7
_START_PRIORITY = 10
_END_PRIORITY = 9
_FALLBACK_PRIORITY = 0


def _trim_edges(response: str) -> str:
    text = response.strip()
    for mark in _EDGE_MARKS:
        text = text.strip(mark)
    return text


def extract_mcq_answer(response: Optional[str], choices: Optional[Sequence[str]] = None) -> str:
    """The choice letter a free-form response gives, or ``""`` when it gives none (lmms-eval's rules).

    ``choices`` defaults to A-H. Candidates, by priority: the response starts with a standalone letter (10), ends
    with one (9), a letter after an answer phrase such as "the answer is" (7; the first occurrence of each letter
    after the phrase, even inside a word), "(A)" (6), "A." (5), "A:" (4), "A)" (3), "A " (2); only when there is no
    candidate at all, any occurrence of a letter (0). The highest priority wins; among equals the later position.
    Matching is case-sensitive except for the answer phrases.
    """
    if not response or not response.strip():
        return ""
    letters = tuple(choices) if choices else DEFAULT_CHOICES
    padded = " " + _trim_edges(response) + " "
    candidates: list[tuple[int, int, str]] = []  # (priority, position, letter), in lmms-eval's order
    for _name, priority, template in _MARKED_FORMATS:
        for letter in letters:
            position = padded.rfind(template.format(letter))
            if position != -1:
                candidates.append((priority, position, letter))
    lowered = padded.lower()
    for phrase in ANSWER_PHRASES:
        found = lowered.find(phrase)
        if found == -1:
            continue
        for letter in letters:
            position = padded.find(letter, found + len(phrase))
            if position != -1:
                candidates.append((_PHRASE_PRIORITY, position, letter))
    core = padded.strip()
    for letter in letters:
        if core.startswith(letter) and (len(core) == 1 or not core[1].isalpha()):
            candidates.append((_START_PRIORITY, 0, letter))
    for letter in letters:
        if core.endswith(letter) and (len(core) == 1 or not core[-2].isalpha()):
            candidates.append((_END_PRIORITY, len(padded) - 1, letter))
    if not candidates:
        for letter in letters:
            position = padded.rfind(letter)
            if position != -1:
                candidates.append((_FALLBACK_PRIORITY, position, letter))
    if not candidates:
        return ""
    # max() keeps the first of equal keys, as lmms-eval's stable descending sort does.
    return max(candidates, key=lambda candidate: (candidate[0], candidate[1]))[2]


class LetterExtractionScoring:
    """Parsing and correctness of the tasks lmms-eval scores with :func:`extract_mcq_answer` (Video-MME, MLVU):
    the letter extracted with ``choices`` must equal the gold letter exactly. Mixed into those benchmarks."""

    choices: tuple[str, ...] = ("A", "B", "C", "D")

    def parse(self, response: str) -> str:
        return extract_mcq_answer(response, self.choices)

    def is_correct(self, response: str, parsed: str, gold: str) -> bool:
        return parsed == gold


# --- MVBench (mcq_acc) -------------------------------------------------------------------------------------------

_OPTION_LINE = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
# lmms-eval's pattern starts with "(?!<=\d)", a look-ahead (not a look-behind) that never fails before a ".": so
# every "." not followed by a digit is removed.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(\,)(\d)")
# lmms-eval calls pattern.sub("", text, re.UNICODE): the flag lands in the ``count`` argument, so at most
# int(re.UNICODE) == 32 periods are removed.
_PERIOD_REMOVAL_LIMIT = int(re.UNICODE)
_STANDALONE_LETTER = re.compile(r"\b([A-E])\b", re.IGNORECASE)
MVBENCH_LETTERS = ("A", "B", "C", "D", "E")


def _clean_punctuation(text: str) -> str:
    """VQA-style punctuation handling as in mcq_acc: drop a mark next to a space (or when the text has a
    digit-comma-digit anywhere), otherwise turn it into a space; then drop periods not followed by a digit."""
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    cleaned = text
    for mark in _PUNCTUATION:
        if mark + " " in text or " " + mark in text or has_digit_comma:
            cleaned = cleaned.replace(mark, "")
        else:
            cleaned = cleaned.replace(mark, " ")
    return _PERIOD.sub("", cleaned, count=_PERIOD_REMOVAL_LIMIT)


def mvbench_normalize(text: str) -> str:
    """What mcq_acc compares: an upper-case letter A-E when one is found, else the cleaned lower-case text."""
    option = _OPTION_LINE.match(text.strip())
    if option:
        return option.group(1).upper()
    cleaned = text.replace("\n", " ").replace("\t", " ").strip()
    cleaned = _clean_punctuation(cleaned)
    for mark in ("'", '"', ")", "("):
        cleaned = cleaned.strip(mark)
    cleaned = cleaned.strip().lower()
    letter = _STANDALONE_LETTER.search(cleaned)
    return letter.group(1).upper() if letter else cleaned


def mvbench_extract(response: str) -> str:
    """The letter mcq_acc reads from a response, or ``""`` when it finds none."""
    normalized = mvbench_normalize(response)
    return normalized if normalized in MVBENCH_LETTERS else ""


def mvbench_match(gold_letter: str, response: str) -> bool:
    """mcq_acc: True when the response and the gold letter normalise to the same string."""
    return mvbench_normalize(response) == mvbench_normalize(gold_letter)
