"""The installed package carries the workflow: the Snakefile, workflow/ (rules, scripts, schema,
report captions), config/ and profiles/ are copied into umia/_workflow/ when a wheel is built, so
``umia run`` works from any folder after a plain ``pip install``. (An editable install runs the
repository's own files.) Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
WORKFLOW = ("Snakefile", "workflow", "config", "profiles")


class BuildWithWorkflow(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "umia" / "_workflow"
        for name in WORKFLOW:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, target / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / name)


setup(cmdclass={"build_py": BuildWithWorkflow})
