"""The layer rules of docs/architecture.md: a module imports from its own layer and the
layers before it, never from a later one."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toolkit" / "bisep"

# docs/architecture.md, "Layer rules", lowest first.
LAYERS = [
    ("bisep.errors", "bisep.atomic", "bisep.outdir", "bisep.hashing", "bisep.naming", "bisep.data.prompts",
     "bisep.data.captions"),
    ("bisep.losses", "bisep.dsp"),
    ("bisep.audio", "bisep.data"),
    ("bisep.metrics",),
    ("bisep.separators", "bisep.conditioners"),
    ("bisep.hookspecs", "bisep.registry", "bisep.builtin", "bisep.config", "bisep.checkpoint"),
    ("bisep.inference", "bisep.train", "bisep.report", "bisep.export", "bisep.demo",
     "bisep.shards", "bisep.apps"),
    ("bisep.cli", "bisep.__main__"),
]
# The documented exceptions: mini_clap and laion_clap read their weights with
# bisep.checkpoint, and the package root re-exports public names on first access (its only
# imports).
EXCEPTIONS = {("bisep.conditioners.mini_clap", "bisep.checkpoint"),
              ("bisep.conditioners.laion_clap", "bisep.checkpoint"),
              ("bisep", "bisep.hookspecs"), ("bisep", "bisep.inference")}


def layer(module: str) -> int:
    """The layer of a module: its most specific prefix in LAYERS."""
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS)
               for prefix in prefixes if module == prefix or module.startswith(prefix + ".")]
    assert matches or module == "bisep", f"{module} is in no layer of docs/architecture.md"
    return max(matches)[1] if matches else 0


def bisep_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "bisep")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "bisep":
            yield from ([f"bisep.{a.name}" for a in node.names] if node.module == "bisep"
                        else [node.module])


def test_no_module_imports_a_later_layer():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for target in bisep_imports(path):
            if layer(target) > layer(module) \
                    and (module, target) not in EXCEPTIONS:
                wrong.append(f"{module} imports {target}")
    assert not wrong


def test_layer_lookup():
    assert layer("bisep.data.prompts") == 0 and layer("bisep.data.mom") == 2
    assert layer("bisep.cli.main") == len(LAYERS) - 1
