"""Mesh creation, logical axis rules, sharding helpers and multi-host start-up."""

from lumiere_jax.parallel.abstract import (abstract_batch, abstract_sharded, compile_abstract,
                                           memory_report, remat_compiler_options,
                                           tree_bytes_per_device, with_shardings)
from lumiere_jax.parallel.distributed import initialize_distributed
from lumiere_jax.parallel.mesh import (BATCH_AXES, DEFAULT_RULES, MESH_AXES, batch_sharding,
                                       check_rules, init_sharded, logical_sharding, make_mesh,
                                       mesh_rules, param_shardings, shard_batch)

__all__ = [
    "BATCH_AXES", "DEFAULT_RULES", "MESH_AXES", "abstract_batch", "abstract_sharded",
    "batch_sharding", "check_rules", "compile_abstract", "init_sharded",
    "initialize_distributed", "logical_sharding", "make_mesh", "memory_report", "mesh_rules",
    "param_shardings", "remat_compiler_options", "shard_batch", "tree_bytes_per_device",
    "with_shardings",
]
