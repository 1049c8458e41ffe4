"""Packaging for SkyDNS.

``twisted.plugins`` is listed explicitly: it is a namespace shared with Twisted
itself, so it must never get an ``__init__.py`` of ours.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["skydns", "skydns.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["skydns_plugin.py"]},
)
