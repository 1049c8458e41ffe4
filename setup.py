"""Packaging for SkyDNS.

``twisted.plugins`` is listed explicitly: it is a namespace shared with Twisted
itself, so it must never get an ``__init__.py`` of ours.

``pip install -e .`` puts this directory on ``sys.path`` (setuptools' "compat"
editable mode) unless another mode is asked for: Twisted finds plugins by
listing the ``twisted/plugins`` directories of ``sys.path``, and the import
hook of the other modes is no directory it can list, so ``twistd`` would
not know ``skydns``.
"""

from setuptools import find_packages, setup
from setuptools.command.editable_wheel import editable_wheel


class EditableWithPlugins(editable_wheel):  # type: ignore[misc]
    """An editable install whose ``twisted/plugins`` Twisted can see."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.mode:
            self.mode = "compat"


setup(
    packages=find_packages(include=["skydns", "skydns.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["skydns_plugin.py"]},
    cmdclass={"editable_wheel": EditableWithPlugins},
)
