"""Answer extraction on awkward model outputs. Each expected letter is derived by hand from lmms-eval's rules
(mcq_extract.py and mvbench's mcq_acc at commit 75571cfe); the comment says which rule decides."""

import pytest

from divprune_video.eval.mcq import extract_mcq_answer, mvbench_extract, mvbench_match, mvbench_normalize

ABCD = ["A", "B", "C", "D"]

EXTRACT_ABCD = [
    ("A", "A"),  # a lone letter: starts with it
    ("B.", "B"),  # trailing '.' trimmed
    ("(C)", "C"),  # "(C)" beats "C)"
    ("The answer is D.", "D"),  # ends with a standalone letter
    ("Answer: B", "B"),  # ends with B ("answer:" is no answer phrase)
    ("I think it's A, because B is wrong", "B"),  # "A," has no format; "B " (space) is the only candidate
    ("Apple", "A"),  # no format matches: fallback finds the capital A
    ("", ""),
    ("   \n\t", ""),
    ("none of the options", ""),  # no capital choice letter at all
    ("E", ""),  # E is not among A-D
    ("The best answer is: C", "C"),
    ("C. The man is running.", "C"),  # starts with a standalone C
    ("Option B is correct, not A.", "A"),  # ending beats everything but the start
    ("(A) or (B)", "B"),  # two "(X)": the later one
    ("B) dog", "B"),
    ("The answer is Because...", "B"),  # the phrase rule takes the B inside "Because"
    ("I choose D", "D"),
    ("'A'", "A"),  # quotes trimmed
    ('"B".', "B"),  # '.' then '"' trimmed, in that order
    ('A."', "A"),  # '"' trimmed last, so "A." remains: starts with A
    ("answer is C or D", "D"),  # ends with D
    ("答案是B", "B"),  # Chinese phrase; 是 is alphabetic, so no "end" candidate
    ("选C", "C"),
    ("A B C D", "A"),  # starts with A
    ("D is wrong, the answer is A", "D"),  # the start outranks the phrase
    ("Dogs are running", "D"),  # fallback: the D of "Dogs"
    ("The answer is (B).", "B"),
    ("a", ""),  # case-sensitive: lower-case letters never count
    ("b.", ""),
    ("Answer: A\nReason: B is wrong", "B"),  # "A\n" has no format; "B " does
    ("A: the dog", "A"),
    ("(D", "D"),  # ends with D after a non-letter
    ("None", ""),
    ("CD", "D"),  # only fallback candidates: the later one
    ("ABC", "C"),
    ("The best answer is: A. the cat", "A"),  # the phrase rule (7) beats "A." (5)
    ("the correct answer is: B", "B"),
    ("My answer is C, then D.", "D"),  # phrase candidates C and D: the later; D also ends it
    ("Good", ""),  # G is not a choice here
    ("BAD", "D"),  # fallback over B, A, D: the last one
    ("  C  ", "C"),
]

EXTRACT_DEFAULT_CHOICES = [
    ("E", "E"),
    ("H.", "H"),
    ("The answer is F", "F"),
    ("Good", "G"),  # fallback: the G of "Good"
    ("I", ""),  # I is not among A-H
    ("(G) and (B)", "B"),  # the later "(X)"
]


@pytest.mark.parametrize("response,expected", EXTRACT_ABCD)
def test_extract_mcq_answer_abcd(response, expected):
    assert extract_mcq_answer(response, ABCD) == expected


@pytest.mark.parametrize("response,expected", EXTRACT_DEFAULT_CHOICES)
def test_extract_mcq_answer_default_choices(response, expected):
    assert extract_mcq_answer(response) == expected


def test_extract_mcq_answer_handles_none():
    assert extract_mcq_answer(None, ABCD) == ""


MVBENCH = [
    ("A. The man", "A"),  # "X. text" line
    ("a. the man", "A"),  # ... case-insensitive
    ("(B) dog", "B"),  # '(' becomes a space, ')' next to a space is dropped
    ("B", "B"),
    ("Answer: C", "C"),  # first standalone letter after lower-casing
    ("I think it's a dog", "A"),  # the article "a" is a standalone letter
    ("The answer is (D).", "D"),
    ("E. none", "E"),
    ("F", ""),  # F is outside A-E: the cleaned text is returned
    ("", ""),
    ("Best option: (C)", "C"),
    ("1.5 seconds, so B", "B"),  # the period before a digit stays; still finds b
    ("The video shows a man", "A"),
    ("Because the man is...", ""),  # no standalone a-e
    ("\n\nB\n", "B"),
    ("C.\nMore text", "C"),  # the option pattern spans the newline via \s*
    ("(E) something", "E"),
    ("d) The dog", "D"),
    ("Option A", "A"),
    ("A.B", "A"),
    ("Both A and B", "A"),
    ("the answer is b", "B"),
    ("She is the best", ""),  # "best", "she" ... no single letter a-e
    ("x" + "." * 40 + " c", "C"),  # over 32 periods: only 32 removed, the letter still found
]


@pytest.mark.parametrize("response,expected", MVBENCH)
def test_mvbench_extract(response, expected):
    assert mvbench_extract(response) == expected


@pytest.mark.parametrize("response,expected", MVBENCH)
@pytest.mark.parametrize("gold", ["A", "B", "C", "D", "E"])
def test_mvbench_match_agrees_with_the_extracted_letter(response, expected, gold):
    assert mvbench_match(gold, response) == (expected == gold)


def test_mvbench_normalize_returns_cleaned_text_without_letter():
    # lmms-eval compares this text with the gold letter: it can never be equal (it is lower-case).
    assert mvbench_normalize("Because, the man!") == "because the man"
    assert mvbench_normalize("x" + "." * 40) == "x" + "." * 8  # at most 32 periods are removed
