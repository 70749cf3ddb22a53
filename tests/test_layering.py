"""Imports run one way (docs/design.md, "Which way imports run"), read from the source
with `ast`, so nothing is imported to check it:

  nn <- models <- sampling <- pipeline / applications <- sample.py / evaluate.py;
  training <- train.py (training may use sampling, never the reverse)
"""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "lumiere_jax")
ENTRY_POINTS = ("train", "sample", "evaluate", "export_pretrained")


def imported_modules(source: str, module: str) -> set[str]:
    """Absolute names of every module `source` (the file of `module`) imports, at any
    depth (function-local imports count); relative imports resolved against `module`."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


def package_modules() -> dict[str, set[str]]:
    """{dotted module name: the modules it imports} for every file of lumiere_jax."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                module = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
                with open(path, encoding="utf-8") as f:
                    out[module] = imported_modules(f.read(), module)
    return out


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


RULES = [
    # (modules under this prefix, may not import modules under these prefixes)
    ("lumiere_jax.nn", ("lumiere_jax.models", "lumiere_jax.training", "lumiere_jax.diffusion",
                        "lumiere_jax.pipeline", "lumiere_jax.applications")),
    ("lumiere_jax.models", ("lumiere_jax.training", "lumiere_jax.diffusion", "lumiere_jax.data",
                            "lumiere_jax.text", "lumiere_jax.parallel", "lumiere_jax.pipeline",
                            "lumiere_jax.applications", "lumiere_jax.runs")),
    *[(layer, ("lumiere_jax.models", "lumiere_jax.training", "lumiere_jax.pipeline",
               "lumiere_jax.applications", "lumiere_jax.runs"))
      for layer in ("lumiere_jax.diffusion", "lumiere_jax.data", "lumiere_jax.parallel",
                    "lumiere_jax.text")],
    *[(layer, ("lumiere_jax.training",))
      for layer in ("lumiere_jax.pipeline", "lumiere_jax.applications", "lumiere_jax.runs",
                    "lumiere_jax.pretrained", "lumiere_jax.eval", "lumiere_jax.sampling")],
    # sampling sits under the cascade and the applications that sample through it
    ("lumiere_jax.sampling", ("lumiere_jax.pipeline", "lumiere_jax.applications",
                              "lumiere_jax.data", "lumiere_jax.runs")),
]
MODELS_MAY_USE = ("jax", "flax", "einops", "numpy", "lumiere_jax.nn", "lumiere_jax.models")


def violations(modules: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imports in sorted(modules.items()):
        for imp in sorted(imports):
            if imp.split(".")[0] in ENTRY_POINTS:
                found.append(f"{module} imports the script {imp}")
            for layer, banned in RULES:
                if within(module, layer) and any(within(imp, b) for b in banned):
                    found.append(f"{module} imports {imp} (upward from {layer})")
            top = imp.split(".")[0]
            if (within(module, "lumiere_jax.models") and top not in sys.stdlib_module_names
                    and top != "__future__"
                    and not any(within(imp, ok) for ok in MODELS_MAY_USE)):
                found.append(f"{module} imports {imp}: models need only jax, flax, einops")
    return found


def test_the_package_imports_only_downward():
    modules = package_modules()
    assert len(modules) > 40 and "lumiere_jax.models.unet" in modules
    assert violations(modules) == []


@pytest.mark.parametrize("module,planted", [
    ("lumiere_jax.models.unet", "from lumiere_jax.training import step"),
    ("lumiere_jax.diffusion.samplers", "from ..models import UNet"),
    ("lumiere_jax.pipeline", "import lumiere_jax.training.setup"),
    ("lumiere_jax.data.pipeline", "import train"),
    ("lumiere_jax.models.config", "import tensorflow_datasets as tfds"),
    ("lumiere_jax.applications.style", "def f():\n    from lumiere_jax.training import optim"),
    ("lumiere_jax.sampling", "from lumiere_jax.applications.conditioning import split_condition"),
])
def test_a_planted_upward_import_is_caught(module, planted):
    modules = package_modules()
    modules[module] = modules[module] | imported_modules(planted, module)
    assert violations(modules), planted
