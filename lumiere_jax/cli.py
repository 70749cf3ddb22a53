"""How the top-level scripts run: `--help` prints the script's docstring and every flag and
exits 0 (absl's own --help exits 1); a `ValueError` (a bad flag, input or file) becomes one
line `<script>: error: ...` and exit status 1, never a traceback. The process then ends at
once (`os._exit`, as train.py's error exit): an orbax restore that failed leaves async
reads whose "Exception ignored" tracebacks would otherwise print after the message at
interpreter shutdown, some of the time. With `tune_malloc=True` (the training scripts,
which run one compiled step many times) the process is first re-executed once with glibc's
malloc tuned for XLA:CPU's buffers (`lumiere_jax.host_memory`; `LUMIERE_MALLOC_TUNING=0`
turns it off). Sampling runs each stage as one long call and gains nothing from it.

    if __name__ == "__main__":
        cli.run(main, __doc__, "sample.py")
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

from absl import app, flags

from lumiere_jax import host_memory

HELP_FLAGS = ("--help", "-h", "-help", "--helpshort")

# `SamplingConfig` field <- the sample.py / evaluate.py flag that sets it, for the flags
# whose None keeps the pretrained folder's default.
OPTIONAL_SAMPLING_FLAGS = dict(base_time_shift="time_shift", critic_scale="critic_scale",
                               layout_until="layout_until", motion_noise="motion_noise",
                               motion_layout="motion_layout", candidate_score="candidate_score",
                               image_start="image_start", redraw_strength="redraw_strength",
                               layer_objects="layer_objects", keyframes="keyframes")
# `SamplingConfig` field <- the shared flag that sets it, for the flags whose 0 / None keeps
# the default.
DEFAULT_IF_UNSET_FLAGS = dict(base_steps="steps", ssr_steps="ssr_steps", sampler="sampler",
                              base_guidance="guidance", base_candidates="candidates",
                              clips_per_call="clips_per_call")


def define_base_stage_flags() -> None:
    """The sampling flags sample.py and evaluate.py share (0 / None: the pretrained default).
    Each script defines its own critic_scale / layout_until (their help differs)."""
    flags.DEFINE_enum("base_stage", None, ["base", "conditional"], "i2v / cinemagraph / "
                      "inpaint: the pretrained folder's stage to sample from (None: the "
                      "manifest's choice for the mode, else 'conditional' when shipped; 'base' "
                      "sees the given content by replacement only)")
    flags.DEFINE_integer("steps", 0, "base sampler steps (0: the pretrained default, else 32)")
    flags.DEFINE_integer("ssr_steps", 0, "SSR sampler steps (0: the pretrained default, else 16)")
    flags.DEFINE_enum("sampler", None, ["ddim", "ddpm", "dpmpp_2m"], "sampler (default: the "
                      "pretrained default, else ddim)")
    flags.DEFINE_float("guidance", 0.0, "classifier-free guidance scale of the base stage "
                       "(0: the pretrained default, else 3)")
    flags.DEFINE_integer("candidates", 0, "base clips sampled per prompt (text-to-video; i2v, "
                         "cinemagraph and inpaint with --candidate_score=coherence or "
                         "motion), the one "
                         "--candidate_score picks kept (0: the pretrained default; 1: off)")
    flags.DEFINE_integer("clips_per_call", 0, "the base network sees at most this many clips "
                         "per call (guidance and --candidates multiply the batch; 0: 16 on "
                         "CPU, where smaller calls stay in cache, the whole batch on GPU / TPU)")
    flags.DEFINE_float("time_shift", None, "log-SNR shift of the base stage's step times "
                       "(None: the pretrained default, else 0 = evenly spaced in t; < 0 spends "
                       "more steps at high noise)")
    flags.DEFINE_float("motion_noise", None, "correlation of the base stage's starting noise "
                       "moving the way the shipped motion planner reads the prompt (text-to-"
                       "video, i2v, cinemagraph, inpaint; None: the pretrained default; 0: plain "
                       "noise)")
    flags.DEFINE_enum("candidate_score", None, ["critic", "motion", "coherence", "reader"],
                      "how best of --candidates picks: the shipped critic's score (text-to-video "
                      "only), the clip whose measured motion agrees best with the planner's, the "
                      "clip whose change one translation explains best, or the clip the shipped "
                      "object reader is surest shows the prompt's colours, shapes and directions "
                      "(text-to-video only; None: the pretrained default)")
    flags.DEFINE_float("image_start", None, "i2v, cinemagraph, text-to-video through a keyframe: "
                       "the base stage starts at this noise level from the image carried along "
                       "the planned motion (SDEdit of the moved image; None: the pretrained "
                       "default; 0: from pure noise)")
    flags.DEFINE_integer("keyframes", None, "text-to-video: the T2I stage draws this many "
                         "images per prompt, the shipped object reader keeps the one surest to "
                         "show the prompt's objects and the image-to-video stage animates it "
                         "(None: the pretrained default; 0: the base stage draws from the text)")
    flags.DEFINE_float("redraw_strength", None, "text-to-video: the base stage's kept clip is "
                       "noised again to this level and denoised under its prompt (SDEdit of "
                       "its own clip: same motion, objects redrawn; None: the pretrained "
                       "default; 0: off)")
    flags.DEFINE_bool("layer_objects", None, "text-to-video: a prompt that names several "
                      "objects is drawn one object phrase at a time (each with the prompt's "
                      "background) and the clips are layered before the SSR stage (None: the "
                      "pretrained default)")
    flags.DEFINE_enum("motion_layout", None, ["field", "objects"], "text-to-video: what of that "
                      "noise moves: the whole field, or one disc per object phrase (None: the "
                      "pretrained default)")


def setting_value(text: str) -> Any:
    """A NAME=VALUE setting's VALUE: JSON (0.6, 1, true), else the text itself (motion)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def sampling_overrides(f, **unset_is_default: Any) -> dict:
    """`SamplingConfig` fields the user set through the shared flags (0 / None: keep the
    default), plus `unset_is_default` (a script's own flags, 0 / None: keep the default)."""
    chosen = {field: getattr(f, flag) for field, flag in DEFAULT_IF_UNSET_FLAGS.items()}
    chosen = {k: v for k, v in {**chosen, **unset_is_default}.items() if v}
    optional = {field: getattr(f, flag) for field, flag in OPTIONAL_SAMPLING_FLAGS.items()
                if getattr(f, flag) is not None}
    return {**chosen, **optional}


def exit_with_error(message: str) -> None:
    """Print `message` to stderr and end the process with status 1 at once, without the
    interpreter teardown in which tensorstore / orbax callbacks (a failed read or save)
    print tracebacks after the message."""
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    os._exit(1)


def run(main: Callable[[list[str]], None], doc: str | None, script: str,
        tune_malloc: bool = False) -> None:
    if any(a in HELP_FLAGS for a in sys.argv[1:]):
        print(doc or "")
        print(flags.FLAGS.main_module_help())
        sys.exit(0)
    if tune_malloc:
        host_memory.relaunch_with_tuned_malloc()

    def checked_main(argv: list[str]) -> None:
        try:
            main(argv)
        except ValueError as e:
            exit_with_error(f"{script}: error: {e}")

    app.run(checked_main)
