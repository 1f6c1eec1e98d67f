"""Triton's interpreter replaces the builtins of triton.language with interpreted ones when a kernel is
launched (in the language modules the kernel's globals name), and restores them when the launch ends; but
it also redoes that replacement at every call of a device function inside the launch (an inspect.getmembers
over the language modules, about 0.4 ms a call, most of the interpreter's cost for small tiles). When the
device function's globals name only modules the launch has replaced already, the nested replacement finds
nothing left to do. `skip_nested_language_patching` makes such calls skip it: the same interpreted
functions run, only sooner. A device function naming another module (triton.language.core, from the
language's own jit functions) is patched as before. It applies only where the interpreter has the layout
this relies on (triton 3.x: `_patch_lang` called by `GridExecutor.__call__` and by device-function calls),
and does nothing otherwise."""
from __future__ import annotations


def skip_nested_language_patching() -> bool:
    """Install the skip; True if installed (or already), False where the interpreter differs."""
    try:
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        return False
    patch = getattr(interpreter, "_patch_lang", None)
    scope_type = getattr(interpreter, "_LangPatchScope", None)
    if patch is None or scope_type is None or not hasattr(interpreter, "GridExecutor"):
        return False
    if getattr(patch, "skips_nested", False):
        return True
    launches = [0]  # launches in progress
    patched = set()  # ids of the language modules replaced in the launch in progress

    def languages(fn) -> set:
        return {id(v) for v in fn.__globals__.values() if v is tl or v is tl.core}

    class LaunchScope:
        """The launch's patch scope; restoring it ends the launch."""

        def __init__(self, scope):
            self.scope = scope

        def restore(self) -> None:
            try:
                self.scope.restore()
            finally:
                launches[0] -= 1
                patched.clear()

    def patch_lang(fn):
        langs = languages(fn)
        if launches[0] > 0 and langs <= patched:
            return scope_type()  # a device function inside a launch: nothing left to replace
        scope = patch(fn)
        patched.update(langs)
        if launches[0] > 0:
            return scope  # as the interpreter does for device functions: discarded, left in place
        launches[0] += 1
        return LaunchScope(scope)

    patch_lang.skips_nested = True
    patch_lang.original = patch
    interpreter._patch_lang = patch_lang
    return True
