"""Word count in Python: count the words of each paragraph, merge the counts with a reduce,
then list the most frequent words that are not stop words.

    dipla-server run examples/python/wordcount/job.toml --stage top
"""

import re

import dipla

STOP_WORDS = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "had", "has",
    "have", "he", "her", "his", "i", "in", "is", "it", "its", "me", "my", "not", "of", "on",
    "or", "she", "so", "that", "the", "their", "them", "then", "there", "they", "this", "to",
    "was", "we", "were", "what", "when", "which", "who", "with", "would", "you",
}


@dipla.task
def count(paragraph: str) -> dict[str, int]:
    """How often each word occurs in `paragraph`, lower-cased."""
    counts: dict[str, int] = {}
    for word in re.findall(r"[a-z']+", paragraph.lower()):
        word = word.strip("'")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


@dipla.task
def merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Two counts added (a reducer: it folds any number of them)."""
    total = dict(a)
    for word, n in b.items():
        total[word] = total.get(word, 0) + n
    return total


@dipla.task
def top(counts: dict[str, int], n: int) -> list[tuple[str, int]]:
    """The `n` most frequent words that are not stop words, most frequent first (ties in
    alphabetical order)."""
    words = [(word, c) for word, c in counts.items() if word not in STOP_WORDS]
    words.sort(key=lambda pair: (-pair[1], pair[0]))
    return words[:n]
