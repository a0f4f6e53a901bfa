"""The floor: an aiohttp endpoint that parses the request syncsvc would get and answers a same-sized JSON body.

Nothing else happens: no authentication, no Redis, no encryption. It is what any aiohttp JSON service on this
machine costs, so ``syncsvc / floor`` is the share of the machine's HTTP capacity syncsvc keeps while doing its
work. One process, like the aiohttp endpoint the targets were set against.

    python -m bench.systems.floor --port 8099 --bodies FOLDER

``FOLDER`` holds the answers syncsvc gave to one request of each workload (captured by the run):
``write.json`` for a POST, ``delta.json`` for a GET with ``lastSyncCount``, ``pull.json`` for any other GET (those of
the workloads measured: ``bench.probe`` may measure one). The request body, if any, is parsed (orjson) and the
answer is the captured bytes.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

import orjson
from aiohttp import web

from bench.load import RequestTemplate
from bench.systems.base import ServerProcess


def app(bodies: Path) -> web.Application:
    answers = {
        name: path.read_bytes() for name in ("write", "delta", "pull") if (path := bodies / f"{name}.json").exists()
    }

    async def post(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(body=answers["write"], content_type="application/json")

    async def get(request: web.Request) -> web.Response:
        which = "delta" if request.query.get("lastSyncCount") else "pull"
        return web.Response(body=answers.get(which, b"{}"), content_type="application/json")

    application = web.Application()
    application.router.add_post("/{tail:.*}", post)
    application.router.add_get("/{tail:.*}", get)
    return application


class Floor(ServerProcess):
    """The floor as a system of the run; its templates are the ones syncsvc got (``use``)."""

    name = "floor"

    def __init__(self) -> None:
        self._templates: dict[str, list[RequestTemplate]] = {}

    def use(self, workload: str, templates: list[RequestTemplate], answer: bytes, bodies: Path) -> None:
        """Serve ``answer`` to ``templates`` (syncsvc's requests of ``workload``: write, delta or pull)."""
        bodies.mkdir(parents=True, exist_ok=True)
        (bodies / f"{workload}.json").write_bytes(answer)
        self._templates[workload] = templates

    def install(self) -> None:
        """Nothing to install: the project's own venv."""

    def start(self, folder: Path, port: int) -> None:
        command = [sys.executable, "-m", "bench.systems.floor", "--port", str(port), "--bodies", str(folder)]
        self.serve(command, port, what="floor", seconds=30)

    def versions(self) -> dict[str, str]:
        return {"aiohttp": version("aiohttp")}

    async def write_templates(self, users: int) -> list[RequestTemplate]:
        return self._templates["write"]

    async def delta_templates(self, users: int) -> list[RequestTemplate]:
        return self._templates["delta"]

    async def full_pull_templates(self, datasets: int) -> list[RequestTemplate]:
        return self._templates["pull"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(app(args.bodies), host="127.0.0.1", port=args.port, access_log=None, print=lambda _: None)


if __name__ == "__main__":
    main()
