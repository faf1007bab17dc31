"""examples/: each program is a torch program with only its imports changed, and trains as torch does.

For every example the torch twin is derived mechanically from the example's own source by reverting
its neuronix import lines (the rule examples/README.md states), so the test proves "only the imports
changed". Both programs then train for a few steps from the same seed on the same synthetic data, and
their per-step losses must agree at float32 rtol 1e-5 (issue 14's bar). Nothing is copied between the
two: the initial weights agree because neuronix initialises from torch's RNG in torch's order.
"""

from __future__ import annotations

import ast
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# example -> the arguments of a short CPU run (a few seconds each; CI runs them)
SHORT_RUNS = {
    "mnist_cnn.py": "--no-cuda --max-steps 4 --batch-size 16 --train-size 64 --test-size 32".split(),
    "vae.py": "--no-cuda --max-steps 5 --batch-size 32 --train-size 128".split(),
    "dcgan.py": "--no-cuda --max-steps 3 --batch-size 8 --train-size 24 --nz 16 --ngf 8 --ndf 8".split(),
    "word_language_model_lstm.py": "--no-cuda --max-steps 6 --emsize 32 --nhid 32 --bptt 8 --tied".split(),
    "word_language_model_transformer.py": "--no-cuda --max-steps 6 --emsize 32 --nhid 32 --bptt 8".split(),
    "char_gpt.py": ("--device cpu --max-iters 6 --eval-interval 3 --eval-iters 2 --sample-tokens 16 "
                    "--batch-size 4 --block-size 16 --n-embd 32 --n-head 2").split(),
}
LOSS_RTOL = 1e-5

# The import rule, reverted: each neuronix import line is the torch line with `torch` spelt `neuronix`
# (`import torch` is `import neuronix as torch`); `from torch.utils.data import ...` lines are the same
# in both programs (the data pipeline stays torch's).
_REVERT = [
    (re.compile(r"^import neuronix as torch$"), "import torch"),
    (re.compile(r"^import neuronix\.([\w.]+) as (\w+)$"), r"import torch.\1 as \2"),
    (re.compile(r"^from neuronix((?:\.\w+)*) import (.+)$"), r"from torch\1 import \2"),
]


def _revert_line(line: str) -> str:
    for pattern, replacement in _REVERT:
        if pattern.match(line):
            return pattern.sub(replacement, line)
    return line


def torch_twin(source: str) -> str:
    """The torch program: the example's source with its neuronix import lines reverted, nothing else."""
    return "\n".join(_revert_line(line) for line in source.split("\n"))


def _names_outside_docstring(source: str) -> set[str]:
    """Every module an import statement names, and every identifier, attribute and string the code uses."""
    tree = ast.parse(source)
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    found: set[str] = set()
    for node in (n for stmt in body for n in ast.walk(stmt)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def _imported_modules(source: str) -> set[str]:
    return {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import) for alias in node.names} | {
        node.module or "" for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
    }


def check_only_imports_differ(source: str) -> list[str]:
    """The problems that make `source` more than a torch program with its imports changed (none: [])."""
    problems = []
    twin = torch_twin(source)
    leftovers = sorted(n for n in _names_outside_docstring(twin) if "neuronix" in n)
    if leftovers:
        problems.append(f"neuronix is used outside the import lines: {leftovers}")
    stray = sorted(m for m in _imported_modules(source) if m.split(".")[0] == "torch" and m != "torch.utils.data")
    if stray:
        problems.append(f"imports torch outside the data pipeline (only `from torch.utils.data import` stays): {stray}")
    changed = [(old, new) for old, new in zip(source.split("\n"), twin.split("\n")) if old != new]
    if not changed:
        problems.append("no import line names neuronix")
    shown_torch, shown_neuronix = docstring_diff(source)
    if shown_torch != [new for _, new in changed] or shown_neuronix != [old for old, _ in changed]:
        problems.append(f"the docstring's diff is not the changed lines: -{shown_torch} +{shown_neuronix}, changed {changed}")
    return problems


def docstring_diff(source: str) -> tuple[list[str], list[str]]:
    """The torch lines (``-import ...``) and the neuronix lines (``+import ...``) the module docstring shows."""
    lines = [line.strip() for line in (ast.get_docstring(ast.parse(source)) or "").split("\n")]
    shown = {sign: [line[1:] for line in lines if re.match(rf"^\{sign}(import|from) ", line)] for sign in "-+"}
    return shown["-"], shown["+"]


def load_program(name: str, source: str, filename: str) -> types.ModuleType:
    """Run `source` as a module named `name` (registered while it lives, as dataclasses and pickling need)."""
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def run_main(name: str, source: str, filename: str, argv: list[str], patch=None) -> list[float]:
    """The program's main(argv): its per-step losses, flattened to floats (`patch(module)` first, if given)."""
    module = load_program(name, source, filename)
    try:
        if patch is not None:
            patch(module)
        # a step's loss is a number, or a tuple of numbers (DCGAN: the discriminator's and the generator's)
        return [float(value) for step in module.main(list(argv)) for value in (step if isinstance(step, tuple) else (step,))]
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("example", sorted(SHORT_RUNS))
def test_only_the_imports_differ(example):
    source = (EXAMPLES / example).read_text()
    assert check_only_imports_differ(source) == []


def test_import_check_catches_a_non_import_change():
    source = (EXAMPLES / "vae.py").read_text()
    used_in_code = source.replace("        std = torch.exp(0.5 * logvar)", "        std = neuronix.exp(0.5 * logvar)")
    assert used_in_code != source
    assert any("outside the import lines" in p for p in check_only_imports_differ(used_in_code))
    real_torch = source.replace("from torch.utils.data import DataLoader, Dataset", "from torch.nn import Module")
    assert any("outside the data pipeline" in p for p in check_only_imports_differ(real_torch))
    stale_doc = source.replace("    +from neuronix import optim\n", "")
    assert any("docstring's diff" in p for p in check_only_imports_differ(stale_doc))


def test_examples_are_all_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SHORT_RUNS)


def _printed_samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("sample: ")]


def run_both(example: str, argv: list[str], patch=None) -> tuple[list[float], list[float]]:
    """(neuronix's losses, torch's losses): the example and its torch twin, each run as main(argv)."""
    path = EXAMPLES / example
    source = path.read_text()
    expected = run_main(f"_torch_twin_{path.stem}", torch_twin(source), f"<torch twin of {path}>", argv, patch)
    actual = run_main(f"_neuronix_{path.stem}", source, str(path), argv, patch)
    return actual, expected


def assert_losses_agree(example: str, actual: list[float], expected: list[float], rtol: float, steps: int = 3) -> None:
    assert len(actual) == len(expected) >= steps
    assert all(math.isfinite(loss) for loss in expected)
    worst = max(range(len(expected)), key=lambda i: abs(actual[i] - expected[i]) / abs(expected[i]))
    assert all(abs(a - e) <= rtol * abs(e) for a, e in zip(actual, expected)), (
        f"{example}: step {worst} loss {actual[worst]!r} vs torch {expected[worst]!r}; neuronix {actual}, torch {expected}"
    )


@pytest.mark.parametrize("example", sorted(SHORT_RUNS))
def test_losses_match_torch(example, capsys):
    actual, expected = run_both(example, SHORT_RUNS[example])
    # a program that samples (the char GPT) draws the same text: same weights, same RNG stream, same top-k cut;
    # the torch twin printed the first half of the samples, the example the second
    samples = _printed_samples(capsys.readouterr().out)
    assert samples[: len(samples) // 2] == samples[len(samples) // 2 :]
    assert len(samples) == (2 if example == "char_gpt.py" else 0)
    assert_losses_agree(example, actual, expected, LOSS_RTOL)


def _functional_namespace(program, drop: str = "", **replace):
    """A copy of the program's F namespace without `drop`, with `replace`'s functions instead of its own."""
    names = {n: getattr(program.F, n) for n in dir(program.F) if not n.startswith("__") and n != drop}
    return types.SimpleNamespace(**{**names, **replace})


def _plant_loss_scale(program):
    """A fault in the program's loss: binary cross-entropy 3e-5 too large (a few float32 ulps per element)."""
    real = program.F.binary_cross_entropy
    program.F = _functional_namespace(program, binary_cross_entropy=lambda *a, **k: real(*a, **k) * (1 + 3e-5))


def test_parity_check_catches_a_planted_fault():
    path = EXAMPLES / "vae.py"
    argv = SHORT_RUNS["vae.py"]
    expected = run_main("_torch_twin_vae_planted", torch_twin(path.read_text()), f"<torch twin of {path}>", argv)
    faulty = run_main("_neuronix_vae_planted", path.read_text(), str(path), argv, patch=_plant_loss_scale)
    with pytest.raises(AssertionError, match="vae.py: step"):
        assert_losses_agree("vae.py", faulty, expected, LOSS_RTOL)


def test_char_gpt_state_dicts_load_strictly_both_ways():
    """nanoGPT's flash check takes the same path under both libraries, so the state_dicts have the same
    keys (no causal-mask buffer on either side), the same seeded initial values, and load strictly."""
    path = EXAMPLES / "char_gpt.py"
    source = path.read_text()
    programs = {"torch": load_program("_torch_twin_gpt", torch_twin(source), f"<torch twin of {path}>"),
                "neuronix": load_program("_neuronix_gpt", source, str(path))}
    try:
        models = {}
        for name, program in programs.items():
            program.torch.manual_seed(0)
            config = program.GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, bias=False)
            models[name] = program.GPT(config)
        assert models["torch"].transformer.h[0].attn.flash and models["neuronix"].transformer.h[0].attn.flash
        torch_state, neuronix_state = models["torch"].state_dict(), models["neuronix"].state_dict()
        assert list(neuronix_state) == list(torch_state)
        for key, value in torch_state.items():
            assert _raw(neuronix_state[key]).equal(value), key
        models["torch"].load_state_dict({k: _raw(v) for k, v in neuronix_state.items()}, strict=True)
        models["neuronix"].load_state_dict(torch_state, strict=True)
    finally:
        for program in programs.values():
            sys.modules.pop(program.__name__, None)


def _hide_sdpa(program):
    """The program's F without scaled_dot_product_attention, as an older torch's: nanoGPT's slow path."""
    program.F = _functional_namespace(program, drop="scaled_dot_product_attention")


def test_char_gpt_explicit_mask_path_matches_torch():
    """Where F has no scaled_dot_product_attention, the GPT masks and softmaxes by hand (a causal-mask
    buffer, masked_fill with -inf, attention dropout): that path trains as torch's too."""
    argv = SHORT_RUNS["char_gpt.py"][:]
    argv[argv.index("--max-iters") + 1] = "3"
    actual, expected = run_both("char_gpt.py", argv, patch=_hide_sdpa)
    assert_losses_agree("char_gpt.py (explicit mask)", actual, expected, LOSS_RTOL)


def _raw(value):
    """The torch tensor behind a neuronix tensor (a torch tensor as it is)."""
    return getattr(value, "data", value)


# --- CUDA (runs where a GPU is present; CI's CPU machines skip it) -------------------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# float32 on CUDA: the same bar, except the GPT, whose main turns TF32 matmuls on (as nanoGPT does) in both
# programs: a 10-bit mantissa, and the two engines' backward matmuls need not pair their operands alike.
# Under autocast the losses are bfloat16/float16 arithmetic: a sanity bar, not parity.
CUDA_RTOL = {"char_gpt.py": 1e-3}
AMP_RTOL = 2e-2


def _cuda_argv(example: str, dtype: str = "float32") -> list[str]:
    argv = [a for a in SHORT_RUNS[example] if a != "--no-cuda"]
    if "--device" in argv:
        argv[argv.index("--device") + 1] = "cuda"
        argv += ["--dtype", dtype]
    return argv


@pytest.fixture
def deterministic_cuda():
    """cuDNN's deterministic algorithms and no TF32 convolutions while the two programs run, then as before."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
     torch.backends.cuda.matmul.allow_tf32) = saved


@needs_cuda
@pytest.mark.parametrize("example", sorted(SHORT_RUNS))
def test_losses_match_torch_on_cuda(example, deterministic_cuda):
    actual, expected = run_both(example, _cuda_argv(example))
    assert_losses_agree(example, actual, expected, CUDA_RTOL.get(example, LOSS_RTOL))


@needs_cuda
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_char_gpt_mixed_precision_on_cuda(dtype, deterministic_cuda):
    """autocast and, for float16, the GradScaler: the GPT's steps under AMP follow torch's."""
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("needs CUDA with bfloat16")
    actual, expected = run_both("char_gpt.py", _cuda_argv("char_gpt.py", dtype))
    assert_losses_agree(f"char_gpt.py ({dtype} autocast)", actual, expected, AMP_RTOL)
