"""Run at the start of every IPython kernel of a user's server: loads the ``%mlops`` magics,
so a notebook needs no ``%load_ext jupyter_mlops``.

The local spawner points ``$PYTHONSTARTUP`` here, which IPython kernels run at start
(``InteractiveShellApp.exec_PYTHONSTARTUP``). A plain ``python`` prompt runs it too, and there
it does nothing.
"""


def _load_mlops_magics() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    try:
        shell.extension_manager.load_extension("jupyter_mlops")
    except Exception as e:  # a broken extension must not break the kernel
        print(f"jupyter-mlops: %mlops is not available in this kernel ({e})")


_load_mlops_magics()
del _load_mlops_magics
