"""Runs an amqtt 0.12.1 broker from a YAML configuration file, until SIGTERM or SIGINT.

Usage: python amqtt_broker.py CONFIG.yaml

amqtt's own CLI (`amqtt -c CONFIG`) cannot start the HTTP auth plugins in 0.12.1: the plugins'
configuration is checked with strict typing, so the strings `post`, `json`, … of a YAML file are
refused where the plugin wants its enum types, and the CLI builds the broker before an event loop
runs. This launcher reads the YAML, turns those option strings into the plugin's enums, and starts
`amqtt.broker.Broker` inside a running event loop. It logs to stderr; readiness is the listener
accepting TCP connections (the test harness polls for it).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import yaml
from amqtt.broker import Broker
from amqtt.contrib.http import ParamsMode, RequestMethod, ResponseMode

# Plugin options whose YAML strings must become the HTTP plugins' enum types.
ENUM_OPTIONS = {
    "request_method": RequestMethod,
    "params_mode": ParamsMode,
    "response_mode": ResponseMode,
}


def load_config(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        config = yaml.safe_load(file) or {}
    plugins = config.get("plugins") or {}
    for options in plugins.values():
        if not isinstance(options, dict):
            continue
        for key, enum in ENUM_OPTIONS.items():
            if isinstance(options.get(key), str):
                options[key] = enum(options[key].lower())
    return config


async def serve(config: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    broker = Broker(config)
    await broker.start()
    logging.getLogger("amqtt_broker").info("broker started")
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} CONFIG.yaml")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)
    # One line per hook answer ("http request returned 403"): what a failure report needs.
    logging.getLogger("amqtt.contrib.http").setLevel(logging.DEBUG)
    asyncio.run(serve(load_config(sys.argv[1])))


if __name__ == "__main__":
    main()
