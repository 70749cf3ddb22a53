"""A prompt's object phrases and its background phrase, in moving_shapes' caption grammar.

    "a small red circle moving right and a blue square moving up on a black background"
    split_objects(p)    -> ["a small red circle moving right",
                            "a blue square moving up on a black background"]
    object_phrases(p)   -> ["a small red circle moving right", "a blue square moving up"]
    background_phrase(p) -> "on a black background"
    object_prompts(p)   -> ["a small red circle moving right on a black background",
                            "a blue square moving up on a black background"]

Objects are split at " and a " / " and an " (not at the "and" of "up and to the left");
the background is a trailing "on a(n) <word> background". Lower-cased, whitespace-trimmed.
"""

from __future__ import annotations

import re

_BACKGROUND = re.compile(r"\s+(on an?\s+\w+\s+background)\s*$")
_OBJECT_SPLIT = re.compile(r"\s+and\s+(?=an?\s)")


def split_objects(prompt: str) -> list[str]:
    """The prompt split into its objects' phrases; the last keeps the background phrase."""
    return _OBJECT_SPLIT.split(prompt.strip().lower())


def background_phrase(prompt: str) -> str | None:
    """The trailing "on a ... background", or None."""
    found = _BACKGROUND.search(" " + prompt.strip().lower())
    return found.group(1) if found else None


def object_phrases(prompt: str) -> list[str]:
    """The prompt's object phrases, without the background phrase."""
    return split_objects(_BACKGROUND.sub("", " " + prompt.strip().lower()).strip())


def object_prompts(prompt: str) -> list[str]:
    """One prompt per object phrase, each ending with the prompt's background phrase (if
    any): what drawing the objects one at a time asks of the model."""
    background = background_phrase(prompt)
    return [p if background is None else f"{p} {background}" for p in object_phrases(prompt)]
