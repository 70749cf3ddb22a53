"""Parameter counts (T2I vs new temporal) and forward FLOPs of a model config, abstractly.

Nothing is materialised: params come from `jax.eval_shape`, FLOPs from XLA's cost
analysis of the lowered forward pass. Prints one JSON object per figure.

    python benchmarks/model_size.py --config paper_stunet [--batch 1]
"""

from __future__ import annotations

import argparse
import json
import time

import flax.linen as nn
import jax
from flax import traverse_util

from lumiere_jax.models import UNet, dummy_inputs, is_trainable_path
from lumiere_jax.models.presets import CONFIGS, get_config


def abstract_params(config, inputs):
    init = lambda key, i: nn.meta.unbox(UNet(config).init(key, **i)["params"])
    return jax.eval_shape(init, jax.random.key(0), inputs)


def forward_flops(config, params, inputs) -> float:
    fwd = jax.jit(lambda p, i: UNet(config).apply({"params": p}, **i))
    cost = fwd.lower(params, inputs).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper_stunet", choices=sorted(CONFIGS))
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    config = get_config(args.config)
    inputs = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
        dummy_inputs(config, batch=args.batch, text_len=64))
    start = time.perf_counter()
    params = abstract_params(config, inputs)
    flat = traverse_util.flatten_dict(params)
    temporal = sum(v.size for p, v in flat.items() if is_trainable_path(p))
    total = sum(v.size for v in flat.values())
    print(json.dumps(dict(figure="params", config=args.config, total=total,
                          t2i_frozen=total - temporal, new_trainable=temporal,
                          trainable_fraction=round(temporal / total, 4))))
    flops = forward_flops(config, params, inputs)
    x_shape = list(inputs["x"].shape)
    print(json.dumps(dict(figure="forward_flops", config=args.config, input_shape=x_shape,
                          dtype=config.dtype, flops=flops, tflops=round(flops / 1e12, 2),
                          seconds_to_analyse=round(time.perf_counter() - start, 1))))


if __name__ == "__main__":
    main()
