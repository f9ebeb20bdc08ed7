"""A code version derived from a function's source, for assets that give none.

Dagster substitutes the run id for a missing code version, which would make
every run a miss. Pivot hashes the function's normalized AST instead: comments,
blank lines, formatting, the docstring and the decorators do not count; any
change to the logic does. Functions the body calls are not followed (give an
explicit `code_version` when a helper's change must re-run the asset).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from pivot_store.hashing import hash_bytes

PREFIX = "src-"


def _strip(node: ast.AST) -> ast.AST:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        node.decorator_list = []
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return node


def normalized_source(fn: Callable[..., Any]) -> str:
    """The function's AST dumped without positions, comments, docstring or decorators."""
    fn = inspect.unwrap(fn)
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    func = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), tree
    )
    return ast.dump(_strip(func), annotate_fields=False, include_attributes=False)


def source_code_version(fn: Callable[..., Any]) -> str | None:
    """`src-<xxh64>` of the normalized source, or None when the source is unavailable."""
    try:
        text = normalized_source(fn)
    except (OSError, TypeError, SyntaxError):
        return None
    return PREFIX + hash_bytes(text.encode("utf-8"))
