#!/usr/bin/env python
"""Azure CLI extension 'virtual-node': az aks virtual-node enable | disable | status | wait."""
from setuptools import find_packages, setup

VERSION = "0.3.0"

CLASSIFIERS = [
    "Development Status :: 4 - Beta",
    "Intended Audience :: Developers",
    "Intended Audience :: System Administrators",
    "Programming Language :: Python",
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
]

# azure-cli-core, knack, the Azure SDKs and PyYAML come with the CLI itself and are not listed.
# kubernetes: tested with 37.0.2; the range admits releases with the same client API used here.
DEPENDENCIES = ["kubernetes>=32.0.0,<38.0.0"]

with open("README.md", "r", encoding="utf-8") as f:
    README = f.read()
with open("HISTORY.rst", "r", encoding="utf-8") as f:
    HISTORY = f.read()

setup(
    name="virtual-node",
    version=VERSION,
    description="Enable, verify and remove AKS virtual nodes (ACI connector) in one command.",
    long_description=README + "\n\n" + HISTORY,
    long_description_content_type="text/markdown",
    license="MIT",
    author="az aks virtual-node maintainers",
    url="https://github.com/Azure/azure-cli-extensions",
    classifiers=CLASSIFIERS,
    packages=find_packages(include=["azext_virtualnode", "azext_virtualnode.*"], exclude=["*.tests", "*.tests.*"]),
    install_requires=DEPENDENCIES,
    package_data={"azext_virtualnode": ["azext_metadata.json"]},
)
