"""``make bench``: the API's memory under hostile input. Prints figures; asserts nothing.

A real API process (``gateway serve``, uvicorn, on SQLite, loopback) is sent, one at a
time, requests built to make it grow:

- a signed batch of 40 KB: 20,000 nested arrays in a name;
- a signed 50 MB batch whose one name is 17 million characters;
- a signed batch with a 5000-digit amount;
- an unauthenticated 128 MiB bank callback (declared length; and chunked, undeclared);
- a 512 MiB batch with a forged signature over a declared digest; and one with no
  signature at all (chunked).

Before each request the process's peak resident set (``VmHWM``) is reset
(``/proc/PID/clear_refs``); after the answer, ``VmHWM`` and ``VmRSS`` are read from
``/proc/PID/status``. Every figure is printed beside the floor — the same figures for a
normal, small signed batch, measured in the same run — and their ratio; flat means a
ratio near 1. The request bodies are produced chunk by chunk, never held whole.

``BENCH_API_SERVER_ROOT`` runs the server from another checkout (e.g. an older commit
unpacked with ``git archive``) to compare; the client side is this one's.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway.auth.hmac_auth import sign_digest, sign_headers  # noqa: E402
from gateway.certs import init_dev_keys  # noqa: E402
from gateway.demo.banks import write_profiles  # noqa: E402
from gateway.settings import DEV_API_CLIENTS  # noqa: E402
from tests.gateway.helpers import payload, persons  # noqa: E402

CLIENT = "county-finance"
SECRET = DEV_API_CLIENTS[CLIENT].encode()
MiB = 1024 * 1024
CHUNK = 256 * 1024
SERVER_ROOT = Path(os.environ.get("BENCH_API_SERVER_ROOT", str(ROOT)))


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, work: Path) -> None:
        keys = work / "keys"
        init_dev_keys(keys)
        db = f"sqlite:///{work / 'gateway.db'}"
        profiles = write_profiles(work, keys, 9, ports={"abc": 9})
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(SERVER_ROOT),
            "GATEWAY_ENV_FILE": "/dev/null",
            "GATEWAY_DATABASE_URL": db,
            "GATEWAY_BANK_PROFILES_FILE": str(profiles),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_LOG_FILE": str(work / "api.log"),
        }
        # the server's own migrations (its checkout may be another one)
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "db", "upgrade"],
            cwd=SERVER_ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)],
            cwd=SERVER_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(work / "api.stderr").open("wb"),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status(self) -> dict[str, int]:
        """VmHWM and VmRSS in KiB."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                out[name] = int(value.split()[0])
        return out

    def reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- requests -----------------------------------------------------------------------------------


def send(
    base: str,
    target: str,
    headers: dict[str, str],
    chunks: Iterator[bytes],
    *,
    chunked: bool = False,
) -> tuple[int | str, int]:
    """Headers, then the body chunk by chunk until the server answers; (status, bytes
    sent). Status is a word when the server gave no answer (e.g. it died)."""
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=600)
    sent = 0
    try:
        head = [f"POST {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if chunked:
            head.append("Transfer-Encoding: chunked")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for chunk in chunks:
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            finally:
                sock.setblocking(True)
                sock.settimeout(600)
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            except OSError:
                break
            sent += len(chunk)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            part = sock.recv(4096)
            if not part:
                return "no answer", sent
            data += part
        return int(data.split(b" ", 2)[1]), sent
    except OSError as exc:
        return type(exc).__name__, sent
    finally:
        sock.close()


def pieces(parts: list[bytes | tuple[bytes, int]]) -> Iterator[bytes]:
    """Bytes, and (block, count) runs of a repeated block, chunk by chunk."""
    buffer = b""
    for part in parts:
        if isinstance(part, bytes):
            buffer += part
        else:
            block, count = part
            for _ in range(count):
                buffer += block
                while len(buffer) >= CHUNK:
                    yield buffer[:CHUNK]
                    buffer = buffer[CHUNK:]
        while len(buffer) >= CHUNK:
            yield buffer[:CHUNK]
            buffer = buffer[CHUNK:]
    if buffer:
        yield buffer


def digest_of(parts: list[bytes | tuple[bytes, int]]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    for chunk in pieces(parts):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def batch_around(
    name_parts: list[bytes | tuple[bytes, int]], n: int = 2
) -> list[bytes | tuple[bytes, int]]:
    body = payload(f"BENCH-{time.monotonic_ns()}", persons(n))
    body["items"][0]["name"] = "ZZMARKERZZ"
    raw = json.dumps(body, ensure_ascii=False).encode()
    before, _, after = raw.partition(b'"ZZMARKERZZ"')
    return [before, *name_parts, after]


def signed_batch(base: str, parts: list[bytes | tuple[bytes, int]]) -> tuple[int | str, int]:
    digest, size = digest_of(parts)
    headers = sign_digest(CLIENT, SECRET, "POST", "/v1/batches", digest)
    headers |= {"Content-Type": "application/json", "Content-Length": str(size)}
    return send(base, "/v1/batches", headers, pieces(parts))


@dataclass
class Figure:
    case: str
    answer: int | str
    sent: int
    hwm: int
    rss: int


def measure(server: Server, case: str, run: Callable[[], tuple[int | str, int]]) -> Figure:
    server.reset_peak()
    answer, sent = run()
    time.sleep(0.5)  # let the answer's own allocations settle
    if not server.alive():
        return Figure(case, f"{answer} (the API died)", sent, 0, 0)
    st = server.status()
    return Figure(case, answer, sent, st["VmHWM"], st["VmRSS"])


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gw-bench-mem-"))
    print(f"API server from {SERVER_ROOT}; work directory {work}\n", flush=True)
    server = Server(work)
    if not server.reset_peak():
        print("note: /proc/PID/clear_refs is not writable: peaks are since the start")
    figures: list[Figure] = []
    try:
        years = iter(range(2026, 2100))

        def normal() -> tuple[int | str, int]:
            # other people's period each time: a new claim, accepted (201)
            body = payload(f"BENCH-OK-{time.monotonic_ns()}", persons(5), period=str(next(years)))
            raw = json.dumps(body).encode()
            headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", raw)
            r = httpx.post(f"{server.base}/v1/batches", content=raw, headers=headers, timeout=60)
            return r.status_code, len(raw)

        # the floor: the same normal request twice (the first warms the process up)
        measure(server, "warm-up", normal)
        floor = measure(server, "normal 5-item signed batch (floor)", normal)
        figures.append(floor)
        cases = [
            (
                "signed, 40 KB of nesting in a name",
                lambda: signed_batch(server.base, batch_around([(b"[", 20_000), (b"]", 20_000)])),
            ),
            (
                "signed 50 MB, a 17M-character name",
                lambda: signed_batch(
                    server.base, batch_around([b'"', (b"x" * 1024, 17 * 1024), b'"'])
                ),
            ),
            (
                "signed, a 5000-digit amount",
                lambda: signed_batch(server.base, batch_around([b'"x", "seq_x": ', b"9" * 5000])),
            ),
            (
                "unauthenticated 128 MiB callback, declared",
                lambda: send(
                    server.base,
                    "/v1/bank-callbacks/abc",
                    {"Content-Type": "application/json", "Content-Length": str(128 * MiB)},
                    pieces([(b" " * MiB, 128)]),
                ),
            ),
            (
                "unauthenticated 128 MiB callback, chunked",
                lambda: send(
                    server.base,
                    "/v1/bank-callbacks/abc",
                    {"Content-Type": "application/json"},
                    pieces([(b" " * MiB, 128)]),
                    chunked=True,
                ),
            ),
            (
                "512 MiB batch, forged signature",
                lambda: send(
                    server.base,
                    "/v1/batches",
                    {
                        **sign_digest(CLIENT, b"forged", "POST", "/v1/batches", "0" * 64),
                        "Content-Type": "application/json",
                        "Content-Length": str(512 * MiB),
                    },
                    pieces([(b" " * MiB, 512)]),
                ),
            ),
            (
                "512 MiB batch, no signature, chunked",
                lambda: send(
                    server.base,
                    "/v1/batches",
                    {"Content-Type": "application/json"},
                    pieces([(b" " * MiB, 512)]),
                    chunked=True,
                ),
            ),
        ]
        for case, run in cases:
            print(f"  {case} …", flush=True)
            figures.append(measure(server, case, run))
            if not server.alive():
                print("  the API died; starting it again")
                server = Server(Path(tempfile.mkdtemp(prefix="gw-bench-mem-")))
                measure(server, "warm-up", normal)
    finally:
        server.stop()
    print()
    print(f"{'case':<45} {'answer':>18} {'sent MiB':>9} {'VmHWM MiB':>10} {'×floor':>7}"
          f" {'VmRSS MiB':>10} {'×floor':>7}")  # fmt: skip
    for f in figures:
        hwm_ratio = f"{f.hwm / floor.hwm:.2f}" if f.hwm else "-"
        rss_ratio = f"{f.rss / floor.rss:.2f}" if f.rss else "-"
        print(
            f"{f.case:<45} {f.answer!s:>18} {f.sent / MiB:>9.1f} {f.hwm / 1024:>10.1f}"
            f" {hwm_ratio:>7} {f.rss / 1024:>10.1f} {rss_ratio:>7}"
        )
    out = ROOT / ".bench" / "api_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps([f.__dict__ for f in figures], indent=1, ensure_ascii=False))
    print(f"\nfigures saved to {out}")


if __name__ == "__main__":
    main()
