"""A test plug-in file that does not import."""

import no_such_module_for_umia_tests  # noqa: F401


def method(ctx, model, forget, retain, s, gen):
    pass
