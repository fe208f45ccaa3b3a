"""``python -m aksim serve --scenario FILE --env-file PATH``: run the simulator until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from aksim.azconfig import login, write_env_file
from aksim.sim import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aksim", description="Local Azure + AKS simulator.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the simulator in the foreground")
    serve.add_argument("--scenario", required=True, help="scenario YAML file (or a name in aksim/scenarios)")
    serve.add_argument("--env-file", required=True, type=Path,
                       help="written once ready: export lines that point the venv's az at the simulator")
    serve.add_argument("--config-dir", type=Path, default=None,
                       help="AZURE_CONFIG_DIR for az (default: <env-file dir>/azure)")
    serve.add_argument("--arm-port", type=int, default=0)
    serve.add_argument("--admin-port", type=int, default=0)
    serve.add_argument("--no-login", action="store_true", help="do not register the cloud / az login")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    sim = Simulator(args.scenario, arm_port=args.arm_port, admin_port=args.admin_port).start()
    try:
        print(f"aksim: scenario '{sim.scenario.name}' ready in {time.monotonic() - started:.2f}s; "
              f"ARM {sim.arm_url}, admin {sim.admin_url}", file=sys.stderr, flush=True)
        config_dir = args.config_dir or args.env_file.resolve().parent / "azure"
        if not args.no_login:
            login(sim, config_dir)
        write_env_file(sim, config_dir, args.env_file)
        print(f"aksim: environment written to {args.env_file}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        args.env_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
