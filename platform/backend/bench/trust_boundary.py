"""What the trust boundary costs (issue 20), in one run on this machine:

heartbeats: heartbeat ingest of this checkout (callback tokens with purpose, expiry and key id;
    bounded bodies) vs the commit before issue 20 (a git worktree of BASE_COMMIT, the same
    bench server), rounds alternated; target >= 0.95x.
upload: POST /v1/datasets of a 25 MB and a 100 MB zip (an imagefolder dataset of noise PNGs,
    which do not compress) to one API process: seconds each, and how far the process's peak
    resident memory (VmHWM) rose; memory must not grow with the zip's size (the body is spooled
    to disk, the zip checked from its central directory and extracted entry by entry).

Run from platform/backend: `python -m bench.trust_boundary`. SQLite, closed loops of 8
connections; figures are medians of the rounds.
"""

from __future__ import annotations

import io
import random
import tempfile
import time
import zipfile
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import uvloop
from bench.auth_overhead import base_checkout, heartbeat_rate, line, remove_checkout
from bench.live_harness import ApiProcess, api_process, temporal_dev_server
from PIL import Image

# The last commit before issue 20 (the trainer trust boundary) landed.
BASE_COMMIT = "2ecb714"
ROUNDS = 3
IMAGE_SIDE = 256  # a noise PNG of this side is ~197 KB


def noise_png(rng: random.Random) -> bytes:
    pixels = rng.randbytes(IMAGE_SIDE * IMAGE_SIDE * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (IMAGE_SIDE, IMAGE_SIDE), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def imagefolder_zip(path: Path, megabytes: int) -> Path:
    """A zip of `train/<class>/*.png` and `val/<class>/*.png` of about `megabytes` MB."""
    rng = random.Random(megabytes)
    written = index = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        while written < megabytes * 1_000_000:
            split = "val" if index % 5 == 0 else "train"
            label = ("circle", "square")[index % 2]
            image = noise_png(rng)
            archive.writestr(f"{split}/{label}/{index:05d}.png", image)
            written += len(image)
            index += 1
    return path


def peak_rss_kib(api: ApiProcess) -> int:
    """The API process's peak resident memory so far (VmHWM)."""
    for row in Path(f"/proc/{api.pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


async def upload(api: ApiProcess, archive: Path, name: str) -> float:
    """Seconds to upload, check, extract and validate `archive`."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=600) as client:
        with archive.open("rb") as file:
            response = await client.post(
                "/v1/datasets",
                data={"name": name, "format": "imagefolder"},
                files={"file": (archive.name, file, "application/zip")},
            )
    if response.status_code != 201:
        raise RuntimeError(f"upload {archive.name}: {response.status_code} {response.text[:300]}")
    return time.perf_counter() - started


async def main() -> None:
    figures: dict[str, list[float]] = {}
    uploads: list[tuple[int, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="trainyard-trust-bench-") as scratch:
        root = Path(scratch)
        dataset = root / "shapes"
        dataset.mkdir()
        (dataset / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [a]\n")
        base = base_checkout(root / "base", BASE_COMMIT)
        try:
            with temporal_dev_server() as temporal:
                async with AsyncExitStack() as stack:
                    now = await stack.enter_async_context(
                        api_process(temporal, "sqlite", False, root / "now")
                    )
                    before = None
                    if base is not None:
                        before = await stack.enter_async_context(
                            api_process(temporal, "sqlite", False, root / "b", backend_dir=base)
                        )
                    for _ in range(ROUNDS):
                        if before is not None:
                            for name, api in (("now", now), ("base", before)):
                                figures.setdefault(f"beat {name}", []).append(
                                    await heartbeat_rate(api, dataset.as_uri())
                                )
                    for megabytes in (25, 100):
                        archive = imagefolder_zip(root / f"upload-{megabytes}.zip", megabytes)
                        peak_before = peak_rss_kib(now)
                        seconds = await upload(now, archive, f"noise-{megabytes}")
                        uploads.append((megabytes, seconds, peak_rss_kib(now) - peak_before))
                        archive.unlink()
        finally:
            if base is not None:
                remove_checkout(root / "base")
    print(f"trust boundary (SQLite, median of {ROUNDS} rounds)")
    if "beat now" in figures:
        line(f"heartbeats: now vs {BASE_COMMIT}", figures["beat now"], figures["beat base"], 0.95)
    for megabytes, seconds, grew_kib in uploads:
        print(
            f"  upload of a {megabytes:>3} MB zip: {seconds:6.1f} s, "
            f"{megabytes / seconds:5.1f} MB/s, API peak memory +{grew_kib / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    uvloop.run(main())
