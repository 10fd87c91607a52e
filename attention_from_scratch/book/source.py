"""Show the package's own code in a chapter, instead of copying it."""

import ast
import inspect
import textwrap


def show_source(obj, *, docstring=False):
    """Print the source of a function or class, by default without its docstring.

    A public pair checks its inputs in one call and hands them to a
    private body of the same module that holds the maths, so that the
    pairs which call it can skip the check. When a function ends in
    ``return _name(...)``, a call of such a body, that body's source is
    printed right after: the door (one check), then the maths.

    Examples
    --------
    >>> from attention_from_scratch.steps.linear import linear_forward
    >>> show_source(linear_forward)
    def linear_forward(x, w, b):
        x, w, b = check_linear_inputs(x, w, b, dtype=np.float64)
        return _linear_forward(x, w, b)
    <BLANKLINE>
    def _linear_forward(x, w, b):
        out = x @ w + b                                  # (..., D_out)
        return out, LinearCache(x, w)
    """
    shown = []
    while obj is not None and obj not in shown:
        if shown:
            print()
        source = textwrap.dedent(inspect.getsource(obj))
        node = ast.parse(source).body[0]
        if not docstring:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                lines = source.splitlines()
                del lines[first.lineno - 1:first.end_lineno]
                source = "\n".join(lines) + "\n"
        print(source, end="")
        shown.append(obj)
        obj = _private_body(obj, node)


def _private_body(obj, node):
    """The private function of ``obj``'s module that ``obj`` returns the
    call of (``return _name(...)`` as its last statement), or ``None``."""
    last = node.body[-1] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Name)
            and last.value.func.id.startswith("_")):
        return None
    body = getattr(inspect.getmodule(obj), last.value.func.id, None)
    if inspect.isfunction(body) and body.__module__ == obj.__module__:
        return body
    return None
