"""Registration of every avtoolkit module and the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers something, ours and mmaction2's.

    Args:
        init_default_scope: make ``avtoolkit`` the current default scope.  If a
            different scope is current, a new ``avtoolkit`` scope instance is
            created and made current (mmengine keeps the old one).
    """
    from mmaction.utils import register_all_modules as mmaction_register_all
    mmaction_register_all(init_default_scope=False)

    import avtoolkit.datasets  # noqa: F401
    import avtoolkit.engine  # noqa: F401
    import avtoolkit.evaluation  # noqa: F401
    import avtoolkit.models  # noqa: F401
    from avtoolkit.checkpoint.io import allow_mmengine_checkpoint_globals
    allow_mmengine_checkpoint_globals()

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or current.scope_name != 'avtoolkit':
        if current is not None:
            warnings.warn(f'The current default scope "{current.scope_name}" '
                          'is not "avtoolkit"; switching to a new '
                          '"avtoolkit" scope.')
        name = f'avtoolkit-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='avtoolkit')
