"""WSGI entry point (gunicorn config.wsgi).

Each web process loads the language model here, once, before its first request, when a shipped or
registered product reads free text and the provider is the local model (``CANDOR_LM_WARM=0`` skips it):
otherwise the first application with text would wait for torch and the weights to load.
"""

import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def _language_model_warm() -> None:
    if os.environ.get("CANDOR_LM_WARM", "1") == "0":
        return
    try:
        from lending.models import Product
        from lending.selectors import product_spec
        from scoring.language import LocalMiniLM, default_encoder

        if not any(product_spec(product=p).derived_fields for p in Product.objects.all()):
            return
        encoder = default_encoder()
        if isinstance(encoder, LocalMiniLM):  # never call a remote provider at start-up
            encoder.load().encode(["warm up"])
    except Exception:  # the first request loads it instead; never stop the server for this
        logging.getLogger(__name__).exception("language model warm-up failed")
    finally:
        from django.db import close_old_connections

        close_old_connections()


_language_model_warm()
