"""The ``kalam`` console command: ``kalam serve [DIR] --host 127.0.0.1 --port 8080``."""

from __future__ import annotations

import argparse
import os
import sys

from kalam_engine.model.errors import KalamError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
SECRET_ENV = "KALAM_JWT_SECRET"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kalam", description="Kalam for notebooks")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve a data directory with KalamDB's HTTP and WebSocket API")
    serve.add_argument("directory", nargs="?", default=".",
                       help="the data directory (created if missing; default: .)")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port to listen on (default {DEFAULT_PORT})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvicorn

    import kalam_engine
    from kalam_engine.server.app import ServerConfig, create_app

    try:
        db = kalam_engine.connect(args.directory)  # holds the directory's single-writer lock
    except KalamError as exc:
        print(f"kalam serve: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig()
    secret = os.environ.get(SECRET_ENV)
    if secret:
        config.jwt_secret = secret
    try:
        uvicorn.run(create_app(db, config), host=args.host, port=args.port,
                    ws_max_size=2 * config.max_message_bytes, log_level="info")
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
