"""Prompt splitting, against phrases written out by hand."""

import pytest

from lumiere_jax.text.phrases import (background_phrase, object_phrases, object_prompts,
                                      split_objects)

TWO = "a small red circle moving up and to the left and an orange square moving down on a black background"


def test_two_objects_split_at_and_a_not_at_up_and_to_the_left():
    assert split_objects(TWO) == ["a small red circle moving up and to the left",
                                  "an orange square moving down on a black background"]
    assert object_phrases(TWO) == ["a small red circle moving up and to the left",
                                   "an orange square moving down"]
    assert background_phrase(TWO) == "on a black background"
    assert object_prompts(TWO) == [
        "a small red circle moving up and to the left on a black background",
        "an orange square moving down on a black background"]


@pytest.mark.parametrize("prompt, phrases, background", [
    ("a red circle moving right", ["a red circle moving right"], None),
    ("  A Blue Square moving Left  on a White background ", ["a blue square moving left"],
     "on a white background"),
    ("a red circle and a blue square", ["a red circle", "a blue square"], None),
    ("waves", ["waves"], None),
])
def test_prompts_without_two_objects_or_a_background(prompt, phrases, background):
    assert object_phrases(prompt) == phrases
    assert background_phrase(prompt) == background
    assert object_prompts(prompt) == [p if background is None else f"{p} {background}"
                                      for p in phrases]
