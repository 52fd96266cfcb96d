"""Sphinx configuration for cnnative's documentation.

autodoc imports the installed package (``pip install .`` or ``pip install -e .``), never the
source tree: the kernels are compiled modules, and ``src/cnnative/signal.py`` must not shadow
the standard library's ``signal`` on the path.
"""
import os
import sys

import cnnative

# The directives of this site (the command line's help texts) live next to this file.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "cnnative"
author = "the cnnative authors"
copyright = "the cnnative authors, BSD 3-Clause licence"
version = release = cnnative.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "cnnative_cli",
]

exclude_patterns = ["_build", "requirements.txt"]
templates_path = []
html_static_path = ["_static"]
html_theme = "alabaster"
html_theme_options = {"description": "scipy-exact 2-D correlation and CNN layers in typed "
                                     "Cython", "fixed_sidebar": True}

# autodoc: members in source order, signatures with their annotations in the description, so
# that the long type hints of the kernels don't swamp the signature line.
autodoc_member_order = "bysource"
# Defaults as written in the source (``dtype=np.float32``), not as their repr (``<class ...>``).
autodoc_preserve_defaults = True
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True, "show-inheritance": True}
autosummary_generate = False

# numpydoc: no autosummary tables of every class's methods (they would need pages of their
# own); the members are documented in place by autodoc.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
