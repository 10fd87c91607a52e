"""Show the package's own code in a chapter, instead of copying it."""

import ast
import inspect
import textwrap


def show_source(obj, *, docstring=False):
    """Print the source of a function or class, by default without its docstring.

    Examples
    --------
    >>> from attention_from_scratch.steps.linear import linear_forward
    >>> show_source(linear_forward)  # doctest: +ELLIPSIS
    def linear_forward(x, w, b):
    ...
        return out, LinearCache(x, w)
    """
    source = textwrap.dedent(inspect.getsource(obj))
    if not docstring:
        node = ast.parse(source).body[0]
        first = node.body[0]
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            lines = source.splitlines()
            del lines[first.lineno - 1:first.end_lineno]
            source = "\n".join(lines) + "\n"
    print(source, end="")
