"""umia: how much privacy does an unlearning method really give, example by example."""

__version__ = "0.3.0"
