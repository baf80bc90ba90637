"""Registries of avtoolkit.

Every registry here is a child of the matching registry of mmaction2 (which in
turn is a child of mmengine's root registry).  Building from a config in the
``avtoolkit`` scope therefore finds, without any prefix,

* classes registered by avtoolkit (looked up first), then
* classes registered by mmaction2 (``ResNet3dSlowFast``, ``Recognizer3D``,
  ``ActionDataPreprocessor``, ``AccMetric``, ...), then
* classes registered by mmengine (``Runner``, ``OptimWrapper``, ``AmpOptimWrapper``,
  ``LinearLR``, ``CheckpointHook``, ...).

Parenting to mmaction2 rather than to mmengine's roots matters: mmaction2 classes
that build their own defaults (``Recognizer3D`` building ``ActionDataPreprocessor``)
must find them from inside the avtoolkit scope.

``locations`` name the modules whose import fills each registry, so a config can
be built without importing avtoolkit by hand first.
"""
from mmaction.registry import DATA_SAMPLERS as MMACTION_DATA_SAMPLERS
from mmaction.registry import DATASETS as MMACTION_DATASETS
from mmaction.registry import EVALUATOR as MMACTION_EVALUATOR
from mmaction.registry import FUNCTION as MMACTION_FUNCTIONS
from mmaction.registry import HOOKS as MMACTION_HOOKS
from mmaction.registry import INFERENCERS as MMACTION_INFERENCERS
from mmaction.registry import LOG_PROCESSORS as MMACTION_LOG_PROCESSORS
from mmaction.registry import LOOPS as MMACTION_LOOPS
from mmaction.registry import METRICS as MMACTION_METRICS
from mmaction.registry import MODEL_WRAPPERS as MMACTION_MODEL_WRAPPERS
from mmaction.registry import MODELS as MMACTION_MODELS
from mmaction.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMACTION_OPTIM_WRAPPER_CONSTRUCTORS
from mmaction.registry import OPTIM_WRAPPERS as MMACTION_OPTIM_WRAPPERS
from mmaction.registry import OPTIMIZERS as MMACTION_OPTIMIZERS
from mmaction.registry import PARAM_SCHEDULERS as MMACTION_PARAM_SCHEDULERS
from mmaction.registry import \
    RUNNER_CONSTRUCTORS as MMACTION_RUNNER_CONSTRUCTORS
from mmaction.registry import RUNNERS as MMACTION_RUNNERS
from mmaction.registry import TASK_UTILS as MMACTION_TASK_UTILS
from mmaction.registry import TRANSFORMS as MMACTION_TRANSFORMS
from mmaction.registry import VISBACKENDS as MMACTION_VISBACKENDS
from mmaction.registry import VISUALIZERS as MMACTION_VISUALIZERS
from mmaction.registry import \
    WEIGHT_INITIALIZERS as MMACTION_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

_ENGINE = ['avtoolkit.engine', 'mmaction.engine']

RUNNERS = Registry('runner', parent=MMACTION_RUNNERS, locations=_ENGINE)
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMACTION_RUNNER_CONSTRUCTORS, locations=_ENGINE)
LOOPS = Registry('loop', parent=MMACTION_LOOPS, locations=_ENGINE)
HOOKS = Registry('hook', parent=MMACTION_HOOKS, locations=_ENGINE)
LOG_PROCESSORS = Registry(
    'log processor', parent=MMACTION_LOG_PROCESSORS, locations=_ENGINE)

DATASETS = Registry(
    'dataset', parent=MMACTION_DATASETS,
    locations=['avtoolkit.datasets', 'mmaction.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMACTION_DATA_SAMPLERS,
    locations=['avtoolkit.datasets', 'mmaction.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMACTION_TRANSFORMS,
    locations=['avtoolkit.datasets.transforms', 'mmaction.datasets.transforms'])

MODELS = Registry(
    'model', parent=MMACTION_MODELS,
    locations=['avtoolkit.models', 'mmaction.models'])
MODEL_WRAPPERS = Registry(
    'model wrapper', parent=MMACTION_MODEL_WRAPPERS,
    locations=['avtoolkit.models', 'mmaction.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=MMACTION_WEIGHT_INITIALIZERS,
    locations=['avtoolkit.models', 'mmaction.models'])
TASK_UTILS = Registry(
    'task util', parent=MMACTION_TASK_UTILS,
    locations=['avtoolkit.models', 'mmaction.models'])

OPTIMIZERS = Registry(
    'optimizer', parent=MMACTION_OPTIMIZERS, locations=_ENGINE)
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=MMACTION_OPTIM_WRAPPERS, locations=_ENGINE)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMACTION_OPTIM_WRAPPER_CONSTRUCTORS, locations=_ENGINE)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMACTION_PARAM_SCHEDULERS, locations=_ENGINE)

METRICS = Registry(
    'metric', parent=MMACTION_METRICS,
    locations=['avtoolkit.evaluation', 'mmaction.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMACTION_EVALUATOR,
    locations=['avtoolkit.evaluation', 'mmaction.evaluation'])

VISUALIZERS = Registry(
    'visualizer', parent=MMACTION_VISUALIZERS,
    locations=['mmaction.visualization'])
VISBACKENDS = Registry(
    'vis backend', parent=MMACTION_VISBACKENDS,
    locations=['mmaction.visualization'])

FUNCTIONS = Registry(
    'function', parent=MMACTION_FUNCTIONS,
    locations=['avtoolkit.datasets', 'mmaction.datasets'])
INFERENCERS = Registry(
    'inferencer', parent=MMACTION_INFERENCERS,
    locations=['mmaction.apis'])

# Negative samplers for contrastive objectives: a family of their own, so that
# ``sampler=dict(type='CANSSampler', ...)`` in a model config is checked against
# samplers only.  Samplers are small nn-free callables, so the registry is a root
# registry in the avtoolkit scope.
NEGATIVE_SAMPLERS = Registry(
    'negative sampler', scope='avtoolkit',
    locations=['avtoolkit.models.samplers'])

# Evaluation protocols run by tools/test.py when a config has a top-level
# ``protocol`` dict (e.g. the ESC-50 frozen-feature SVM protocol).  They are
# plain classes, not modules, so the registry is a root registry in the
# avtoolkit scope.
PROTOCOLS = Registry(
    'evaluation protocol', scope='avtoolkit',
    locations=['avtoolkit.evaluation'])
