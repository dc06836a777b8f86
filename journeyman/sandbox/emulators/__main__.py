"""`python -m journeyman.sandbox.emulators <vendor> [--port N] [--validate all|sample|off]
[--record full|counts] [--api-key K]`: serve one vendor emulator on loopback until stopped.

Prints `READY http://127.0.0.1:<port>` once listening. `--validate sample` checks one request
in `--sample-every` against the spec (benchmarks); `--record counts` keeps only counts per
decision id (no per-message records)."""

from __future__ import annotations

import argparse
import signal
import sys

from journeyman.sandbox.emulators import EMULATORS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m journeyman.sandbox.emulators")
    parser.add_argument("vendor", choices=sorted(EMULATORS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--validate", choices=["all", "sample", "off"], default="all")
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument("--record", choices=["full", "counts"], default="full")
    parser.add_argument(
        "--api-key",
        help="the credential the emulator accepts (API key; Twilio auth token; webhook secret)",
    )
    parser.add_argument("--account-sid", help="Twilio only")
    args = parser.parse_args(argv)
    kwargs: dict = {
        "port": args.port,
        "validate": args.validate,
        "sample_every": args.sample_every,
        "record": args.record,
    }
    if args.api_key:
        key = {"twilio": "auth_token", "webhook": "secret"}.get(args.vendor, "api_key")
        if args.vendor != "fcm":
            kwargs[key] = args.api_key
    if args.account_sid and args.vendor == "twilio":
        kwargs["account_sid"] = args.account_sid
    emulator = EMULATORS[args.vendor](**kwargs)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    emulator.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
