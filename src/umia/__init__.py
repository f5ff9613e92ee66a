"""umia: how much privacy does an unlearning method really give, example by example."""

__version__ = "0.3.0"


def __getattr__(name: str):
    """``umia.load`` (umia.api), imported on first use: ``import umia`` stays light."""
    if name == "load":
        from umia.api import load

        return load
    raise AttributeError(f"module 'umia' has no attribute {name!r}")
