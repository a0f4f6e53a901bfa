"""How the long-running processes log (``syncsvc serve``, ``syncsvc relay``): at ``SYNCSVC_LOG_LEVEL``, as text
lines (the default) or, with ``SYNCSVC_LOG_FORMAT=json``, one JSON object per line (python-json-logger) with
``time``, ``process``, ``level``, ``logger`` and ``message``, and whatever a line adds: an access line
(``SYNCSVC_ACCESS_LOG``, ``syncsvc.api.metrics``) adds ``request_id``, ``service``, ``operation``, ``outcome``,
``status`` and ``duration_ms``. No line carries a secret or a record value (the trigger trace redacts values unless
told otherwise)."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

from syncsvc.config import Settings

TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
_JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


def configure_logging(settings: Settings) -> None:
    """The root logger's one handler, on standard error, in the format the settings ask for."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(TEXT_FORMAT, rename_fields=_JSON_NAMES))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
