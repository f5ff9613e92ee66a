"""What umia knows by name: datasets, networks, unlearning methods, attacks and figures.

One entry per thing, read by the config's validation, the workflow's rules, the figures and the
report page, so adding one is one entry here plus its function (and, for a built-in method, its
settings under ``unlearn`` in the schema and config/config.yaml). Importable without torch or
matplotlib: the Snakefile reads it, and every cluster job re-parses the Snakefile.

Functions are named by ``"module:attribute"`` strings and imported only where they run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

TASKS = ("image", "text")
CONTROLS = ("none", "retrain")


@dataclass(frozen=True)
class TaskCode:
    """Where a task's code lives: its ``umia.tasks.Task`` class (``module:Class``, imports torch),
    its data side (a module with ``umia.tasks.TaskData``'s functions, no torch), and its config
    checks beyond the schema (``module:function(cfg, load_plugins)``, no torch; None: none)."""

    task: str
    data: str
    checks: str | None = None


TASK_CODE = {
    "image": TaskCode("umia.tasks.image.task:ImageTask", "umia.tasks.image.data"),
    "text": TaskCode("umia.tasks.text.task:TextTask", "umia.tasks.text.corpus", "umia.tasks.text.checks:check_config"),
}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its task, image shape (C, H, W) and classes where known without reading a file
    (None: read from ``dataset.path``), and whether it needs a local ``path``."""

    task: str
    shape: tuple[int, int, int] | None = None
    n_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    pool_size: int | None = None  # None: computed (digits) or read from the file
    needs_path: bool = False
    description: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    """A network: its task, the smallest image side it takes, and its builder (``module:callable``,
    called as ``builder(in_shape, n_classes, width)``; a text network is the base model)."""

    task: str
    builder: str
    min_side: int = 1


@dataclass(frozen=True)
class MethodSpec:
    """An unlearning method: its function (``module:callable``, the contract of
    ``umia.methods.Context``), the tasks it applies to, and whether its jobs need the retrain
    models' scores (the ``target_phi`` it stops on), and its name in figures and the report. Its
    settings are ``unlearn.<name>`` in the schema (built-ins) or declared by
    ``umia.plugins.method`` (plug-ins)."""

    function: str
    tasks: tuple[str, ...]
    needs_retrain_scores: bool = False
    paper: str = ""
    label: str = ""


@dataclass(frozen=True)
class AttackSpec:
    """An attack: its function (``module:callable``, called with one method's
    ``umia.attacks.Evidence``, returning ``umia.attacks.Trials``, or None where its inputs are
    missing), its label and colour in figures and the report, the figures that show it, the tasks
    it is fit for (its rows appear in summary.csv whenever its inputs exist), and whether its rows
    carry the challenge's per-example epsilon (about 1 ms an example: not for the thousands of
    retained examples)."""

    function: str
    label: str
    colour: str
    figures: tuple[str, ...] = ()
    tasks: tuple[str, ...] = TASKS
    challenge_epsilon: bool = True


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the findings: its report category (its caption is workflow/report/<name>.rst),
    the tasks it applies to, and what it needs from the experiment to say anything: ``methods``
    (at least one unlearning method) or one named method (``per_example_stop``)."""

    category: str
    tasks: tuple[str, ...] = TASKS
    needs_methods: bool = False
    needs_method: str | None = None


DIGITS_SIZE = 1797  # sklearn.datasets.load_digits

DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        "image",
        (1, 8, 8),
        10,
        tuple(str(i) for i in range(10)),
        description="scikit-learn's bundled 8x8 digits, no download",
    ),
    "fashion_mnist": DatasetSpec(
        "image",
        (1, 28, 28),
        10,
        (
            "T-shirt/top",
            "trouser",
            "pullover",
            "dress",
            "coat",
            "sandal",
            "shirt",
            "sneaker",
            "bag",
            "ankle boot",
        ),
        pool_size=60_000,
        description="Fashion-MNIST (torchvision download, or a folder of its four idx files)",
    ),
    "cifar10": DatasetSpec(
        "image",
        (3, 32, 32),
        10,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        pool_size=50_000,
        description="CIFAR-10 (torchvision download, or an .npz)",
    ),
    "npz": DatasetSpec(
        "image",
        needs_path=True,
        description="any images in an .npz: x_train, y_train, x_test, y_test (optional class_names)",
    ),
    "folder": DatasetSpec(
        "image",
        needs_path=True,
        description="an ImageFolder-style tree: train/<class>/*.png and test/<class>/*.png",
    ),
    "imdb": DatasetSpec(
        "text",
        n_classes=2,
        class_names=("negative", "positive"),
        needs_path=True,
        description="IMDB movie reviews (Maas et al. 2011) for a causal language model",
    ),
}

NETWORKS: dict[str, NetworkSpec] = {
    "mlp": NetworkSpec("image", "umia.tasks.image.networks:MLP"),
    "cnn": NetworkSpec("image", "umia.tasks.image.networks:SmallCNN", min_side=2),
    "fastcnn": NetworkSpec("image", "umia.tasks.image.networks:FastCNN", min_side=16),
    "resnet18": NetworkSpec("image", "umia.tasks.image.networks:resnet18", min_side=16),
    "gpt2": NetworkSpec("text", "umia.tasks.text.task:base_model"),
}

_M = "umia.methods.builtin"
METHODS: dict[str, MethodSpec] = {
    "finetune": MethodSpec(f"{_M}:finetune", TASKS, paper="Golatkar et al. 2020", label="Fine-tune"),
    "gradient_ascent": MethodSpec(
        f"{_M}:gradient_ascent", TASKS, paper="Golatkar et al. 2020; Jang et al. 2023", label="Gradient ascent"
    ),
    "neggrad_plus": MethodSpec(f"{_M}:neggrad_plus", TASKS, paper="Kurmanji et al. 2023", label="NegGrad+"),
    "random_labels": MethodSpec(f"{_M}:random_labels", ("image",), paper="Graves et al. 2021", label="Random labels"),
    "l1_sparse": MethodSpec(f"{_M}:l1_sparse", ("image",), paper="Jia et al. 2023", label="ℓ1-sparse"),
    "scrub": MethodSpec(f"{_M}:scrub", ("image",), paper="Kurmanji et al. 2023", label="SCRUB"),
    "salun": MethodSpec(f"{_M}:salun", ("image",), paper="Fan et al. 2024", label="SalUn"),
    "per_example_stop": MethodSpec(
        f"{_M}:per_example_stop", TASKS, needs_retrain_scores=True, paper="Hayes et al. 2024", label="Per-example stop"
    ),
    "npo": MethodSpec(f"{_M}:npo", ("text",), paper="Zhang et al. 2024", label="NPO"),
}

_U, _P, _R = "umia.attacks.ulira:", "umia.attacks.population:", "umia.attacks.rmia:"
ATTACKS: dict[str, AttackSpec] = {
    "ulira": AttackSpec(
        _U + "ulira", "U-LiRA (per-example)", "#c0392b", ("attack_accuracy", "roc", "per_example_accuracy")
    ),
    "ulira_half_out": AttackSpec(_U + "ulira_half_out", "U-LiRA, OUT fit on half the retrains", "#f1948a"),
    "ulira_offline": AttackSpec(_U + "ulira_offline", "U-LiRA offline", "#e67e22", ("roc",)),
    "ulira_fixed_variance": AttackSpec(_U + "ulira_fixed_variance", "U-LiRA fixed variance", "#8e44ad", ("roc",)),
    "urmia": AttackSpec(_R + "urmia", "U-RMIA (per-example, online)", "#d35400", ("roc",)),
    "urmia_offline": AttackSpec(_R + "urmia_offline", "U-RMIA offline", "#a04000", ("roc",)),
    "population_gaussian": AttackSpec(
        _U + "population_gaussian", "population Gaussian", "#2980b9", ("attack_accuracy", "roc")
    ),
    "population_loss": AttackSpec(
        _P + "population_loss", "population loss (LR)", "#7f8c8d", ("attack_accuracy", "roc")
    ),
    "population_zlib": AttackSpec(
        _P + "population_zlib", "population zlib ratio (text)", "#b7950b", ("attack_accuracy", "roc"), ("text",)
    ),
    "population_min_k": AttackSpec(
        _P + "population_min_k", "population Min-K% (text)", "#6c3483", ("attack_accuracy", "roc"), ("text",)
    ),
    "lira_retained": AttackSpec(
        _U + "lira_retained",
        "LiRA on retained examples",
        "#16a085",
        ("roc", "retained_change"),
        challenge_epsilon=False,
    ),
}

FIGURES: dict[str, FigureSpec] = {
    "attack_accuracy": FigureSpec("1. Population vs per-example"),
    "roc": FigureSpec("1. Population vs per-example"),
    "per_example_accuracy": FigureSpec("2. Variance across examples"),
    "protected_examples": FigureSpec("2. Variance across examples"),
    "before_after": FigureSpec("3. Lower for some, higher for others"),
    "retained_change": FigureSpec("4. Retained examples"),
    "rates": FigureSpec("5. Rates of unlearning", needs_methods=True),
    "reach": FigureSpec("5. Rates of unlearning", needs_methods=True),
    "per_example_stop": FigureSpec("6. Per-example stopping", needs_method="per_example_stop"),
    "privacy_utility": FigureSpec("7. Privacy and utility"),
    "efficiency": FigureSpec("8. How many models"),
}


def task_of(dataset: str) -> str:
    """The task ("image" or "text") of a registered dataset."""
    return DATASETS[dataset].task


def figure_names(task: str, method_names: list[str] | tuple[str, ...]) -> list[str]:
    """The figures an experiment of ``task`` with these methods (names, without overrides) draws."""
    out = []
    for name, f in FIGURES.items():
        if task not in f.tasks or (f.needs_methods and not method_names):
            continue
        if f.needs_method is not None and f.needs_method not in method_names:
            continue
        out.append(name)
    return out


def attacks_for(task: str) -> list[str]:
    """The attacks that an experiment of ``task`` reports."""
    return [a for a, spec in ATTACKS.items() if task in spec.tasks]


def load(ref: str):
    """The object a ``"module:attribute"`` string names (or the module, for ``"module"``)."""
    module, _, attr = ref.partition(":")
    m = importlib.import_module(module)
    return getattr(m, attr) if attr else m


def method_label(method: str, labels: dict[str, str] | None = None) -> str:
    """A method entry's name in figures and the report: the config's ``labels`` (or a plug-in's
    declared label, passed in ``labels`` too), else the registry's, with the entry's overrides in
    brackets (``Gradient ascent (lr=5)``); a control or an unknown name as it is."""
    if labels and method in labels:
        return labels[method]
    name, _, overrides = method.partition("@")
    base = (labels or {}).get(name) or (METHODS[name].label if name in METHODS else "") or name
    return f"{base} ({overrides})" if overrides else base
