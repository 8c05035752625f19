"""Render a scenario's HTML report in headless Chromium and save a screenshot, to look at
what a reader sees (the report fetches nothing, so the page renders offline).

    python -m sim scenario unruly_fleet --html report.html
    python tools/report_screenshot.py report.html report.png [--height 3000]

Needs Chromium (Debian: apt-get install chromium). The flags keep it off the network.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}",
            f"--window-size={args.width},{args.height}",
            f"--screenshot={args.png.resolve()}", args.html.resolve().as_uri(),
        ], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not args.png.exists():
        print(done.stderr, file=sys.stderr)
        return 1
    print(f"{args.png}: {args.width}x{args.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
