"""The motion planner (`text.motion_planner`): its fit against the renderer's travel table."""

import numpy as np
import pytest

from lumiere_jax.data.moving_shapes import DIRECTIONS, SPEEDS, travel_examples
from lumiere_jax.text.motion_planner import MotionPlanner


@pytest.fixture(scope="module")
def planner():
    return MotionPlanner.fit(*travel_examples(1500))


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_each_direction_phrase_plans_the_renderers_direction(planner, direction):
    unit = np.asarray(DIRECTIONS[direction][0], float)
    unit /= np.linalg.norm(unit)
    travel = planner([f"a red circle moving {DIRECTIONS[direction][1]}"])[0]
    cos = travel @ unit / np.linalg.norm(travel)
    assert cos > np.cos(np.radians(10)), (direction, travel)
    mean_travel = np.mean([s for s, _ in SPEEDS.values()])  # speed not named: the mean
    assert abs(np.linalg.norm(travel) - mean_travel) < 0.1, travel


def test_speed_words_scale_the_travel(planner):
    slow, fast = planner(["a red circle moving slowly right", "a red circle moving quickly right"])
    assert abs(slow[1] - SPEEDS["slow"][0]) < 0.07 and abs(fast[1] - SPEEDS["fast"][0]) < 0.07


def test_a_prompt_without_motion_words_plans_little_motion(planner):
    assert np.linalg.norm(planner(["a red circle"])[0]) < 0.05


def test_each_object_phrase_gets_its_own_velocity(planner):
    """Two objects moving apart: each phrase's own travel (the renderer's directions), in
    px per frame; a third phrase is dropped; a one-object prompt's second row is absent."""
    prompts = ["a red circle moving left and a blue square moving down",
               "a green diamond moving up", "a red circle moving left and a blue square "
               "moving down and a pink triangle moving right"]
    velocity, present = planner.object_velocities(prompts, 32, 16)
    assert velocity.shape == (3, 2, 2) and velocity.dtype == np.float32
    np.testing.assert_array_equal(present, [[True, True], [True, False], [True, True]])
    px = 32 / 15  # fraction of the frame over the clip -> px per frame
    np.testing.assert_allclose(velocity[0, 0], planner(["a red circle moving left"])[0] * px,
                               rtol=1e-5)
    np.testing.assert_allclose(velocity[0, 1], planner(["a blue square moving down"])[0] * px,
                               rtol=1e-5)
    assert velocity[0, 0, 1] < -0.3 and velocity[0, 1, 0] > 0.3  # left; down (y down)
    assert velocity[1, 0, 0] < -0.3 and not velocity[1, 1].any()
    np.testing.assert_array_equal(velocity[2], velocity[0])


def test_save_load_round_trip_and_damaged_files(planner, tmp_path):
    path = tmp_path / "planner.safetensors"
    planner.save(path)
    loaded = MotionPlanner.load(path)
    assert loaded.vocabulary == planner.vocabulary
    np.testing.assert_allclose(loaded(["a blue square moving up"]),
                               planner(["a blue square moving up"]), atol=1e-6)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="planner.safetensors"):
        MotionPlanner.load(path)
    with pytest.raises(ValueError, match="missing"):
        MotionPlanner.load(tmp_path / "none.safetensors")


def test_fit_checks_the_travel_shape():
    with pytest.raises(ValueError, match="travel"):
        MotionPlanner.fit(["a", "b"], np.zeros((3, 2)))
