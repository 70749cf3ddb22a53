"""grain pipeline: sharding, shuffling/epochs, determinism, checkpoint restore, features."""

import io
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from lumiere_jax.data import FeatureMap, all_captions, humanize_label, load_source, make_dataset
from lumiere_jax.data.features import ArrayRecordBuilder
from lumiere_jax.data.moving_shapes import MovingShapesConfig

N, T, S = 30, 10, 12
LABELS = ["ApplyEyeMakeup", "JumpRope", "walking_dog"]


class TinyActionVideos(ArrayRecordBuilder):
    """A UCF101-like dataset: PNG frames 'frames' + ClassLabel 'label' (other keys, encoding).

    Stored like TFDS's `Video` feature (a sequence of PNG images); `Video` itself needs
    TensorFlow to be constructed in TFDS 4.9.10, `Sequence(Image)` does not.

    Record i has pixel [t, 0, 0, 0] = i and [t, 0, 0, 1] = t, so a batch says which record
    and which frames it holds.
    """

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "frames": tfds.features.Sequence(tfds.features.Image(shape=(S, S, 3)), length=T),
            "label": tfds.features.ClassLabel(names=LABELS),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(N):
            frames = np.full((T, S, S, 3), 200, np.uint8)
            frames[:, 0, 0, 0] = i
            frames[:, 0, 0, 1] = np.arange(T)
            yield i, {"frames": [_png(f) for f in frames], "label": i % len(LABELS)}


def _png(frame):
    """PNG bytes (TFDS encodes numpy frames with TensorFlow, which is not installed)."""
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


FMAP = FeatureMap(video="frames", caption="label")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    TinyActionVideos(data_dir=str(d)).download_and_prepare()
    return str(d)


@pytest.fixture(scope="module")
def source(data_dir):
    return load_source("tiny_action_videos", "train", data_dir=data_dir)


def _ids(batch):
    return batch["video"][:, 0, 0, 0, 0].tolist()


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_batch_layout_and_label_captions(source):
    batch = next(iter(make_dataset(source, batch_size=4, feature_map=FMAP, seed=0)))
    assert batch["video"].shape == (4, T, S, S, 3) and batch["video"].dtype == np.uint8
    assert batch["caption"].shape == (4,) and batch["caption"].dtype.kind == "U"
    names = ["apply eye makeup", "jump rope", "walking dog"]
    for i, cap in zip(_ids(batch), batch["caption"]):
        assert cap == names[i % 3]


def test_humanize_label():
    assert humanize_label("ApplyEyeMakeup") == "apply eye makeup"
    assert humanize_label("walking_dog") == "walking dog"
    assert humanize_label("YoYo") == "yo yo"


@pytest.mark.parametrize("count", [2, 3, 4])
def test_simulated_processes_read_disjoint_shards_covering_the_split(source, count):
    shards = []
    for index in range(count):
        ds = make_dataset(source, batch_size=1, feature_map=FMAP, seed=5, num_epochs=1,
                          drop_remainder=False, shard_index=index, shard_count=count)
        shards.append([i for b in ds for i in _ids(b)])
    flat = [i for s in shards for i in s]
    assert len(flat) == len(set(flat))  # disjoint, no repeats
    assert sorted(flat) == list(range(N))  # together the whole split
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced


def test_default_shard_is_this_jax_process(source):
    ds = make_dataset(source, batch_size=1, feature_map=FMAP, num_epochs=1, drop_remainder=False)
    assert sorted(i for b in ds for i in _ids(b)) == list(range(N))  # 1 process: everything


def test_each_epoch_is_a_fresh_permutation(source):
    ds = make_dataset(source, batch_size=5, feature_map=FMAP, seed=1, num_epochs=3)
    ids = [i for b in ds for i in _ids(b)]
    epochs = [ids[k * N:(k + 1) * N] for k in range(3)]
    assert len(ids) == 3 * N
    for e in epochs:
        assert sorted(e) == list(range(N))
    assert epochs[0] != list(range(N)) and epochs[0] != epochs[1] != epochs[2]


def test_unshuffled_order_is_record_order(source):
    ds = make_dataset(source, batch_size=6, feature_map=FMAP, shuffle=False, num_epochs=1)
    expected = [np.asarray(source[j]["frames"])[0, 0, 0, 0] for j in range(N)]
    assert [i for b in ds for i in _ids(b)] == expected


def test_deterministic_given_seed_and_independent_of_threads(source):
    kw = dict(batch_size=3, feature_map=FMAP, num_frames=4)
    a = _take(iter(make_dataset(source, seed=11, num_threads=1, **kw)), 25)
    b = _take(iter(make_dataset(source, seed=11, num_threads=8, **kw)), 25)
    c = _take(iter(make_dataset(source, seed=12, **kw)), 25)
    _assert_same_batches(a, b)
    assert [_ids(x) for x in a] != [_ids(x) for x in c]


def test_random_temporal_crop_is_a_contiguous_window(source):
    batches = _take(iter(make_dataset(source, batch_size=4, feature_map=FMAP, num_frames=4)), 10)
    starts = set()
    for b in batches:
        for clip in b["video"]:
            t_index = clip[:, 0, 0, 1].astype(int)
            np.testing.assert_array_equal(np.diff(t_index), 1)
            assert 0 <= t_index[0] <= T - 4
            starts.add(t_index[0])
    assert len(starts) > 3  # crops really vary


@pytest.mark.parametrize("images", [False, True])
def test_restored_iterator_yields_exactly_the_uninterrupted_batches(source, images):
    kw = dict(batch_size=4, feature_map=FMAP, seed=3, num_frames=5, images=images)
    full = _take(iter(make_dataset(source, **kw)), 20)  # crosses epoch boundaries (30 records)
    it = iter(make_dataset(source, **kw))
    _assert_same_batches(_take(it, 7), full[:7])
    state = json.loads(json.dumps(it.get_state()))  # what a checkpoint stores
    _take(it, 3)  # the interrupted run went on a bit before dying
    resumed = iter(make_dataset(source, **kw))
    resumed.set_state(state)
    _assert_same_batches(_take(resumed, 13), full[7:])


def test_images_are_frames_of_the_clips(source):
    batch = next(iter(make_dataset(source, batch_size=6, feature_map=FMAP, images=True, size=6)))
    assert batch["image"].shape == (6, 6, 6, 3) and "video" not in batch
    unresized = next(iter(make_dataset(source, batch_size=6, feature_map=FMAP, images=True)))
    t_index = unresized["image"][:, 0, 0, 1]
    assert ((0 <= t_index) & (t_index < T)).all()


def test_embedding_lookup_adds_text(source):
    table = {c: np.full((2, 3), k, np.float32) for k, c in enumerate(all_captions(source, FMAP))}

    def lookup(captions):
        return np.stack([table[c] for c in captions]), np.ones((len(captions), 2), bool)

    batch = next(iter(make_dataset(source, batch_size=4, feature_map=FMAP,
                                   embedding_lookup=lookup)))
    assert batch["text"].shape == (4, 2, 3) and batch["text_mask"].dtype == bool
    for cap, emb in zip(batch["caption"], batch["text"]):
        np.testing.assert_array_equal(emb, table[cap])
    assert all_captions(source, FMAP) == ["apply eye makeup", "jump rope", "walking dog"]


def test_tokenizer_map_adds_ids_and_sharded_batches_concatenate_shards(source):
    """`tokenizer`: each batch gains the ByteTokenizer encoding of its captions (compared
    with encoding them here); `ShardedBatches` over 2 shards in one process = the two
    shards' batches side by side, pixels / ids / mask only, resumable."""
    from lumiere_jax.data.sharded import ShardedBatches
    from lumiere_jax.text import ByteTokenizer

    tok = ByteTokenizer(max_length=12)
    batch = next(iter(make_dataset(source, batch_size=4, feature_map=FMAP, seed=1, tokenizer=tok)))
    ids, mask = tok.encode([str(c) for c in batch["caption"]])
    np.testing.assert_array_equal(batch["ids"], ids)
    np.testing.assert_array_equal(batch["mask"], mask)
    assert batch["ids"].dtype == np.int32 and batch["mask"].dtype == bool

    kw = dict(feature_map=FMAP, seed=2, num_frames=4)
    it = ShardedBatches(source, global_batch_size=6, num_shards=2, tokenizer=tok, **kw)
    shards = [iter(make_dataset(source, batch_size=3, tokenizer=tok, shard_index=i,
                                shard_count=2, **kw)) for i in range(2)]
    for _ in range(3):
        got, parts = next(it), [next(s) for s in shards]
        assert set(got) == {"pixels", "ids", "mask"}
        np.testing.assert_array_equal(got["pixels"], np.concatenate([p["video"] for p in parts]))
        np.testing.assert_array_equal(got["ids"], np.concatenate([p["ids"] for p in parts]))
    state = json.loads(json.dumps(it.get_state()))
    want = next(it)
    again = ShardedBatches(source, global_batch_size=6, num_shards=2, tokenizer=tok, **kw)
    again.set_state(state)
    np.testing.assert_array_equal(next(again)["pixels"], want["pixels"])
    with pytest.raises(ValueError, match="must be a multiple of the 1 processes and divide"):
        ShardedBatches(source, global_batch_size=5, num_shards=2, tokenizer=tok, **kw)


def test_moving_shapes_by_name_end_to_end(tmp_path):
    config = MovingShapesConfig(name="pipe", num_frames=8, height=16, width=16, num_train=12,
                                num_test=2)
    from lumiere_jax.data.moving_shapes import MovingShapes  # pylint: disable=g-import-not-at-top
    MovingShapes(data_dir=str(tmp_path), config=config).download_and_prepare()
    src = load_source("moving_shapes/pipe", "train", data_dir=str(tmp_path))
    batch = next(iter(make_dataset(src, batch_size=4, num_frames=6, size=(8, 12))))
    assert batch["video"].shape == (4, 6, 8, 12, 3)
    assert all(c.startswith("a ") and c.endswith("background") for c in batch["caption"])
    captions = all_captions(src)
    assert set(batch["caption"]) <= set(captions)


def test_bad_arguments(source, data_dir):
    with pytest.raises(ValueError, match="FeatureMap.video"):
        make_dataset(source, batch_size=2, feature_map=FeatureMap(video="clip", caption="label"))
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(source, batch_size=0, feature_map=FMAP)
    with pytest.raises(ValueError, match="shard_index"):
        make_dataset(source, batch_size=2, feature_map=FMAP, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="together"):
        make_dataset(source, batch_size=2, feature_map=FMAP, shard_index=0)
    with pytest.raises(ValueError, match="num_frames"):
        next(iter(make_dataset(source, batch_size=2, feature_map=FMAP, num_frames=T + 1)))
    with pytest.raises(ValueError, match="registered"):
        load_source("no_such_dataset_xyz", data_dir=data_dir)
    with pytest.raises(ValueError, match="not prepared"):
        load_source("moving_shapes/f16_s64", data_dir=data_dir)


@pytest.mark.slow  # spawns worker processes
def test_worker_processes_give_the_same_stream_and_restore(source):
    kw = dict(batch_size=4, feature_map=FMAP, seed=9, num_frames=5)
    reference = _take(iter(make_dataset(source, **kw)), 12)
    it = iter(make_dataset(source, num_workers=1, **kw))
    _assert_same_batches(_take(it, 5), reference[:5])
    state = json.loads(json.dumps(it.get_state()))
    resumed = iter(make_dataset(source, num_workers=1, **kw))
    resumed.set_state(state)
    _assert_same_batches(_take(resumed, 7), reference[5:])


def test_missing_moving_shapes_build_is_prepared_once(tmp_path, monkeypatch):
    """train.py's first data step: a named moving_shapes config that is not on disk is built
    (procedural, offline), then read; a second call finds it and builds nothing."""
    from lumiere_jax.data import prepare_moving_shapes
    from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig
    tiny = MovingShapesConfig(name="auto_tiny", num_frames=4, height=8, width=8, num_train=6,
                              num_test=2)
    monkeypatch.setattr(MovingShapes, "BUILDER_CONFIGS", MovingShapes.BUILDER_CONFIGS + [tiny])
    # tfds memoizes the name -> config dict on first use (by any earlier test): add it there.
    monkeypatch.setitem(MovingShapes.builder_configs, "auto_tiny", tiny)
    with pytest.raises(ValueError, match="not prepared"):
        load_source("moving_shapes/auto_tiny", "train", data_dir=tmp_path)
    assert prepare_moving_shapes("moving_shapes/auto_tiny", tmp_path)
    assert len(load_source("moving_shapes/auto_tiny", "train", data_dir=tmp_path)) == 6
    assert not prepare_moving_shapes("moving_shapes/auto_tiny", tmp_path)
    assert not prepare_moving_shapes("ucf101", tmp_path)  # not ours to build


def test_caption_dropout_needs_moving_shapes_labels(source):
    with pytest.raises(ValueError, match="no 'objects' labels"):
        make_dataset(source, batch_size=2, feature_map=FMAP, caption_dropout=0.5)
    with pytest.raises(ValueError, match="caption_dropout must be in"):
        make_dataset(source, batch_size=2, feature_map=FMAP, caption_dropout=1.5)
    with pytest.raises(ValueError, match="time_reversal_pairs reverses moving_shapes"):
        make_dataset(source, batch_size=2, feature_map=FMAP, time_reversal_pairs=True)
