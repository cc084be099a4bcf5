"""Building and running the emulator's aiohttp application."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from aiohttp import web

from pipeline.emulator import (
    routes_admin,
    routes_admin_credentials,
    routes_auth,
    routes_batch,
    routes_certificates,
    routes_online,
    routes_status,
    routes_testdata,
    routes_xades,
)
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.middleware import admin_only, emulated_ksef
from pipeline.emulator.processing import Processor
from pipeline.emulator.request_helpers import EMULATOR
from pipeline.emulator.state import Emulator
from pipeline.stopping import STOP_SIGNALS, say

log = logging.getLogger(__name__)
MAX_JSON_BODY = 8 * 1024 * 1024  # an online invoice of 3 MB, encrypted and base64-encoded


def create_app(emu: Emulator) -> web.Application:
    app = web.Application(middlewares=[admin_only, emulated_ksef],
                          client_max_size=MAX_JSON_BODY)
    app[EMULATOR] = emu
    for module in (routes_auth, routes_xades, routes_certificates, routes_online, routes_batch,
                   routes_status, routes_testdata, routes_admin, routes_admin_credentials):
        app.add_routes(module.routes())
    return app


@dataclass
class RunningEmulator:
    """An emulator serving on a port; `await RunningEmulator.start(config)` in tests."""

    emulator: Emulator
    runner: web.AppRunner
    stopped: bool = False

    @classmethod
    async def start(cls, config: EmulatorConfig) -> RunningEmulator:
        emu = Emulator.open(config)
        runner = web.AppRunner(create_app(emu), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        emu.port = int(runner.addresses[0][1])
        emu.processor = Processor(emu)
        await emu.processor.start()
        return cls(emu, runner)

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def admin_token(self) -> str | None:
        """The first admin token (for `/_emulator/*` calls), None when none is set."""
        tokens = self.emulator.config.admin_tokens
        return tokens[0] if tokens else None

    @property
    def api_url(self) -> str:
        return self.emulator.base_url + "/v2"

    @property
    def latarnia_url(self) -> str:
        return self.emulator.base_url + "/latarnia"

    async def stop(self) -> None:
        """Stop serving and processing (idempotent); everything committed stays on disk."""
        if self.stopped:
            return
        self.stopped = True
        if self.emulator.processor is not None:
            await self.emulator.processor.stop()
        await self.runner.cleanup()
        await asyncio.to_thread(self.emulator.close)


async def serve(config: EmulatorConfig) -> None:
    """Run until SIGINT/SIGTERM/SIGHUP; announce the URLs on stdout and in `emulator.json`."""
    running = await RunningEmulator.start(config)
    urls = {"baseUrl": running.base_url, "apiUrl": running.api_url,
            "latarniaUrl": running.latarnia_url, "adminUrl": running.base_url + "/_emulator"}
    partial = config.data_dir / "emulator.json.partial"
    partial.write_text(json.dumps(urls, indent=2) + "\n")
    partial.replace(config.data_dir / "emulator.json")  # readers never see half a file
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:  # a closed terminal (SIGHUP) stops it cleanly too
        loop.add_signal_handler(sig, stop.set)
    # never raises: a reader of our output gone must not skip the cleanup below
    say(f"KSeF emulator ready: {running.api_url} (Latarnia {running.latarnia_url})")
    try:
        await running.emulator.pool.warm_up()
        await stop.wait()
    finally:
        await running.stop()
