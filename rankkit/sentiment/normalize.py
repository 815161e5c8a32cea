"""Text normalisation for code-mixed (Bangla, English, Banglish) reviews.

Romanised Bangla has no fixed spelling, and reviewers stretch words and punctuation for emphasis
("valooooo!!!!"). `normalize_review` maps such variants together, in this order:

1. Unicode NFC, so composed and decomposed Bengali vowel signs compare equal;
2. lower case (Bengali script has no case and is left as it is);
3. a letter repeated three or more times is cut to two: "valooooo" -> "valoo", "sooo" -> "soo"
   (digits are never cut: "1000" stays);
4. a run of one punctuation mark becomes one mark: "!!!" -> "!", "?!?!" stays;
5. every emoji becomes a token of its own (spaces around it, with its variation selector and
   skin-tone modifier kept on it), so "valo😡😡" -> "valo 😡 😡";
6. runs of whitespace become one space, and the ends are trimmed.

Bengali-script letters, digits and every other character are kept. Training records whether it
normalised (the `--no-normalize` switch turns it off), and prediction applies the same choice.
"""

from __future__ import annotations

import re
import unicodedata

_ELONGATED = re.compile(r"([^\W\d_])\1{2,}")
_REPEATED_PUNCTUATION = re.compile(r"([^\w\s])\1+")
_EMOJI = re.compile(
    "(?:[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff])"  # pictographs, symbols, dingbats
    "[\ufe0f\U0001f3fb-\U0001f3ff]*"  # variation selector, skin tones
)
_SPACES = re.compile(r"\s+")


def normalize_review(text: str) -> str:
    """The normalised form of one review (see the module docstring for the rules)."""
    text = unicodedata.normalize("NFC", text).lower()
    text = _ELONGATED.sub(r"\1\1", text)
    # emoji are not \w, so the punctuation rule would merge "😡😡" into one: space them out first
    text = _EMOJI.sub(lambda match: f" {match.group(0)} ", text)
    text = _REPEATED_PUNCTUATION.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


def normalize_all(texts: list[str], enabled: bool = True) -> list[str]:
    """Normalised texts, or the texts as they are when `enabled` is False."""
    return [normalize_review(t) for t in texts] if enabled else list(texts)
