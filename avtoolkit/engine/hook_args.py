"""Check the arguments of a config's hooks before a run starts.

mmengine builds the hooks when the Runner starts, so a misspelt argument of
a hook without ``**kwargs`` fails then without saying which config key it
was; worse, ``CheckpointHook`` takes ``**kwargs`` and forwards them to
``Runner.save_checkpoint``, so ``default_hooks.checkpoint.intervall=1``
fails only at the first save, after the training of that interval ran.
:func:`check_hook_args` reads the signatures of the hook classes (nothing
is built) and reports every unknown argument with its key path and the
nearest valid name.
"""
import difflib
import inspect
from typing import Dict, List, Optional, Set, Tuple

from mmengine.hooks import CheckpointHook

__all__ = ['HookArgumentError', 'check_hook_args', 'hook_arguments']

# The hooks mmengine's Runner adds when ``default_hooks`` leaves out a key
# (or gives it without ``type``).
_RUNNER_DEFAULT_TYPES = dict(
    runtime_info='RuntimeInfoHook', timer='IterTimerHook',
    logger='LoggerHook', param_scheduler='ParamSchedulerHook',
    checkpoint='CheckpointHook', sampler_seed='DistSamplerSeedHook')


class HookArgumentError(TypeError):
    """A hook of the config is given an argument it does not take."""


def _named_params(function) -> Tuple[Set[str], bool]:
    """The keyword-capable parameter names of ``function`` (``self``
    excluded) and whether it takes ``**kwargs``."""
    names, var_kw = set(), False
    for i, param in enumerate(inspect.signature(function).parameters.values()):
        if i == 0 and param.name == 'self':
            continue
        if param.kind is param.VAR_KEYWORD:
            var_kw = True
        elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            names.add(param.name)
    return names, var_kw


def _save_checkpoint_extras(runner_cls) -> Set[str]:
    """What ``CheckpointHook``'s ``**kwargs`` may hold: the parameters of
    ``runner_cls.save_checkpoint`` the hook does not pass itself."""
    names, _ = _named_params(runner_cls.save_checkpoint)
    passed = {'out_dir', 'filename', 'file_client_args', 'save_optimizer',
              'save_param_scheduler', 'meta', 'by_epoch', 'backend_args'}
    return names - passed


def hook_arguments(hook_cls, runner_cls=None) -> Optional[Set[str]]:
    """The argument names ``hook_cls`` accepts, or None when it takes
    ``**kwargs`` it does not pass to a known signature.

    A class whose ``__init__`` takes ``**kwargs`` is assumed to pass them to
    its parent's ``__init__`` (whose parameters are added);
    ``CheckpointHook``'s own ``**kwargs`` go to the runner's
    ``save_checkpoint``.
    """
    accepted: Set[str] = set()
    for cls in hook_cls.__mro__:
        if '__init__' not in vars(cls) or cls is object:
            continue
        names, var_kw = _named_params(vars(cls)['__init__'])
        accepted |= names
        if not var_kw:
            return accepted
        if cls is CheckpointHook:
            if runner_cls is None:
                from mmengine.runner import Runner
                runner_cls = Runner
            return accepted | _save_checkpoint_extras(runner_cls)
    # ``**kwargs`` that reach no further ``__init__``: kept for some other
    # use, so anything goes; no ``__init__`` at all: no arguments.
    has_init = any('__init__' in vars(c) for c in hook_cls.__mro__
                   if c is not object)
    return None if has_init else accepted


def _resolve(hook_type, registry):
    if inspect.isclass(hook_type):
        return hook_type
    if isinstance(hook_type, str):
        try:
            return registry.get(hook_type)
        except Exception:  # an unknown scope prefix: the Runner reports it
            return None
    return None


def _runner_class(cfg):
    runner_type = cfg.get('runner_type')
    if runner_type is None:
        from mmengine.runner import Runner
        return Runner
    if inspect.isclass(runner_type):
        return runner_type
    from avtoolkit.registry import RUNNERS
    return RUNNERS.get(runner_type)


def _problems(path: str, hook_cfg, registry, runner_cls) -> List[str]:
    if not isinstance(hook_cfg, dict):
        return []
    hook_cls = _resolve(hook_cfg.get('type'), registry)
    if hook_cls is None:
        return []  # unknown type: the registry's error says so at build
    accepted = hook_arguments(hook_cls, runner_cls)
    if accepted is None:
        return []
    found = []
    for key in hook_cfg:
        if key == 'type' or key in accepted:
            continue
        close = difflib.get_close_matches(key, sorted(accepted), n=1,
                                          cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else (
            f' (it takes: {", ".join(sorted(accepted))})')
        found.append(f'{path}.{key}: {hook_cls.__name__} has no argument '
                     f'"{key}"{hint}')
    return found


def check_hook_args(cfg, registry=None) -> None:
    """Raise :class:`HookArgumentError` listing every argument of
    ``cfg.default_hooks`` and ``cfg.custom_hooks`` that its hook does not
    take (key path, hook class, nearest valid name)."""
    if registry is None:
        from avtoolkit.registry import HOOKS as registry
    runner_cls = _runner_class(cfg)
    problems: List[str] = []
    defaults: Dict = cfg.get('default_hooks') or {}
    for name, hook_cfg in defaults.items():
        if isinstance(hook_cfg, dict) and 'type' not in hook_cfg and \
                name in _RUNNER_DEFAULT_TYPES:
            hook_cfg = dict(hook_cfg, type=_RUNNER_DEFAULT_TYPES[name])
        problems += _problems(f'default_hooks.{name}', hook_cfg, registry,
                              runner_cls)
    for index, hook_cfg in enumerate(cfg.get('custom_hooks') or []):
        problems += _problems(f'custom_hooks[{index}]', hook_cfg, registry,
                              runner_cls)
    if problems:
        raise HookArgumentError(
            'Unknown hook arguments in the config:\n  ' +
            '\n  '.join(problems) +
            '\nFix the key in the config or in --cfg-options.')
