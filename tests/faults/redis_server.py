"""A private `redis-server` for one test: a free port, no persistence, killed by its own pid."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tests.fixtures.database import services_required

__all__ = ["RedisServer", "free_port"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    @classmethod
    def start(cls) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not on PATH"
            if services_required():
                pytest.fail(message)
            pytest.skip(message)
        port = free_port()
        process = subprocess.Popen(  # noqa: S603 - the redis-server on PATH, fixed arguments
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(500):  # a bound on attempts, not a timing assertion
            if process.poll() is not None:
                pytest.fail(f"redis-server exited with {process.returncode}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return cls(process, port)
            time.sleep(0.01)
        process.kill()
        process.wait()
        pytest.fail("redis-server did not start listening")

    def kill(self) -> None:
        """SIGKILL this server (its pid only) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
