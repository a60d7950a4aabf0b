"""Ships packaging/'s unit, agent and desktop templates inside the wheel.

Everything else is in pyproject.toml. `hearth service install` reads the templates at
run time: from a source checkout's packaging/, or, installed from a wheel, from
daemon/_packaging/, which this copies there (packaging/ itself cannot be a package:
its name is taken by the `packaging` library).
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATES = ("linux", "macos")


class BuildPy(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        for folder in TEMPLATES:
            target = os.path.join(self.build_lib, "daemon", "_packaging", folder)
            self.copy_tree(os.path.join("packaging", folder), target)


setup(cmdclass={"build_py": BuildPy})
