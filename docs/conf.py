"""Sphinx configuration of the lookahead_jax documentation.

Build with `bash docs/build.sh` (`sphinx-build -W -b html docs docs/_build/html`). The build
executes the notebooks in notebooks/ (linked here as docs/notebooks) with myst-nb, so the pages
show their plots; any error in a notebook fails the build.

Intersphinx links to jax, optax and flax need the network to fetch their `objects.inv`. The build
machines are offline, and a failed fetch is a warning (an error under -W), so intersphinx is on
only when LOOKAHEAD_JAX_DOCS_INTERSPHINX=1 is set.
"""

import os

import lookahead_jax

project = "lookahead_jax"
author = "lookahead_jax authors"
copyright = "2026, lookahead_jax authors"
release = lookahead_jax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
# Markdown pages and notebooks both go through myst-nb.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# -- Docstrings -----------------------------------------------------------------------------------
# Google style (optax's template): Args / Returns / Example / References.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": False}
# `name` in a docstring renders as code (docstrings use single backticks for identifiers).
default_role = "code"

# -- Cross-project links --------------------------------------------------------------------------
if os.environ.get("LOOKAHEAD_JAX_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "jax": ("https://docs.jax.dev/en/latest/", None),
        "optax": ("https://optax.readthedocs.io/en/latest/", None),
        "flax": ("https://flax.readthedocs.io/en/latest/", None),
    }

# -- Markdown and notebooks -----------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# Every build runs every notebook once, from a clean kernel, with no cache: what the site shows is
# what the code does today. An error in a cell, or a notebook over 300 s, fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "lookahead_jax"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
