"""``python -m kbatch_dask.service`` (``kbatch-dask-service``): run the service."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from kbatch_dask import settings
from kbatch_dask.errors import KbatchError


async def serve() -> None:
    from kbatch_dask.backends.kubernetes.client import KubeAPI, Timeouts
    from kbatch_dask.service.app import Listen, make_app, namespace
    from kbatch_dask.service.cache import JobCache

    config = settings.load()
    listen = Listen.from_environ(os.environ, config.service.name)
    api = KubeAPI(config.kubernetes.context or None)
    # The watches have a client of their own, with timeouts: a silent API server
    # is noticed (and /health says so) instead of waited on for ever.
    watching = KubeAPI(config.kubernetes.context or None, Timeouts.of(config.kubernetes))
    cache = JobCache(watching, namespace(config, api)).start()
    app = make_app(config, api, listen, cache)
    # Bodies over the limit are answered 413 by the handler, in JSON; tornado's
    # own limit (which drops the connection) only stops the absurd.
    app.listen(listen.port, listen.host, max_body_size=4 * config.service.max_body_size + 65536)
    logging.getLogger("kbatch_dask.service").info("listening on %s:%s%s", listen.host, listen.port, listen.prefix)
    await asyncio.Event().wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve())
    except KbatchError as exc:
        sys.exit(f"Error: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
