# Every family is imported so that its modules register.
from . import algorithms  # noqa: F401
from . import backbones  # noqa: F401
from . import classifiers  # noqa: F401
from . import data_preprocessors  # noqa: F401
from . import heads  # noqa: F401
from . import losses  # noqa: F401
from . import necks  # noqa: F401
from . import samplers  # noqa: F401
from . import utils  # noqa: F401
