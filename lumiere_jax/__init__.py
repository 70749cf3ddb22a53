"""lumiere_jax: Lumiere (Space-Time U-Net video diffusion) in JAX / Flax linen."""

__version__ = "0.1.0"
