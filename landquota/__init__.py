"""landquota: construction-land quota, stock land and key projects for a county land bureau."""

from landquota.errors import LandquotaError
from landquota.schema import LAYERS, SCHEMA_VERSION
from landquota.settings import Settings, get_settings

__version__ = "0.1.0"

__all__ = sorted(
    [
        "LAYERS",
        "LandquotaError",
        "SCHEMA_VERSION",
        "Settings",
        "__version__",
        "get_settings",
    ]
)
