"""Resolve "package.module:attr" strings to Python objects.

Users plug their own models, datasets and evaluators into the CLI and the registries with
an import string, the same syntax as console-script entry points:

>>> from hirelc.importing import import_object
>>> import_object("math:sqrt")(16.0)
4.0
"""

from __future__ import annotations

import importlib
import re
from typing import Any

class ImportAttributeError(ValueError, AttributeError):
    """An import string names an attribute its module does not have (a user error: a
    ValueError, and still an AttributeError for callers that catch that)."""


class FactoryError(ValueError, TypeError):
    """A user's factory (named by an import string) is not callable, fails, or returns the
    wrong kind of object (a ValueError for the CLI, still a TypeError for older callers)."""


_SPEC_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_import_string(text: str) -> bool:
    """True when `text` has the shape "package.module:attr" (nothing is imported).

    >>> is_import_string("mypkg.models:make_net"), is_import_string("cifar10:/data")
    (True, False)
    """
    return bool(_SPEC_RE.match(text))


def import_object(spec: str, *, callable_required: bool = True) -> Any:
    """Import `attr` from `package.module` given "package.module:attr" (attr may be dotted).

    Raises ValueError for a malformed string, ImportError when the module cannot be
    imported, `ImportAttributeError` when the attribute is missing, and `FactoryError`
    when a callable was required and the object is not one (both are ValueErrors).

    >>> import_object("os.path:join")("a", "b") in ("a/b", "a\\\\b")
    True
    """
    if not is_import_string(spec):
        raise ValueError(
            f"not an import string: {spec!r}; expected 'package.module:attribute', "
            "e.g. 'mypkg.models:make_net'"
        )
    module_name, attr_path = spec.split(":", 1)
    module = _import_module(module_name, spec)
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ImportAttributeError(f"{spec!r}: module {module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    if callable_required and not callable(obj):
        raise FactoryError(f"{spec!r}: {attr_path!r} is a {type(obj).__name__}, not a callable")
    return obj


def _import_module(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        # Distinguish "the module itself is missing" from "it imports something missing".
        if err.name is not None and (module_name + ".").startswith(err.name + "."):
            raise ImportError(
                f"{spec!r}: module {module_name!r} not found; is its package installed "
                "or on PYTHONPATH?"
            ) from err
        raise ImportError(f"{spec!r}: importing {module_name!r} failed: {err}") from err

