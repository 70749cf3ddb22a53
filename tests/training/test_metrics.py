"""MetricWriter: metrics.jsonl rows, resume trimming, TensorBoard event files."""

import glob
import struct

import numpy as np
from tensorboardX.proto.event_pb2 import Event

from lumiere_jax.training.metrics import MetricWriter, read_metrics


def read_tfrecords(path):
    """Payloads of a TFRecord file: u64 length, u32 crc, data, u32 crc (crcs not checked)."""
    out = []
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            out.append(f.read(length))
            f.read(4)
    return out


def test_rows_resume_trim_and_tensorboard_scalars(tmp_path):
    w = MetricWriter(str(tmp_path), tensorboard=True, progress=False)
    w.write([dict(step=1, loss=np.float32(0.5), lr=1e-3), dict(step=2, loss=np.array(0.25))])
    w.write([dict(step=3, loss=0.125, note="text is kept in jsonl only")])
    w.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["loss"] == 0.25 and isinstance(rows[0]["loss"], float)

    scalars = {}
    (events_file,) = glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
    for payload in read_tfrecords(events_file):
        event = Event.FromString(payload)
        for value in event.summary.value:
            scalars[(value.tag, event.step)] = value.simple_value
    assert scalars == {("loss", 1): 0.5, ("lr", 1): np.float32(1e-3), ("loss", 2): 0.25,
                       ("loss", 3): 0.125}

    # A run resumed from step 2 drops the rows a killed run wrote after its checkpoint.
    MetricWriter(str(tmp_path), resume_step=2, progress=False).close()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]


def test_only_the_writing_process_writes(tmp_path):
    w = MetricWriter(str(tmp_path / "run"), enabled=False, tensorboard=True)
    w.write([dict(step=1, loss=1.0)])
    w.close()
    assert not (tmp_path / "run").exists()
