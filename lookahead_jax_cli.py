"""The `lookahead-jax` console script: Ctrl-C is handled from the first instant, before the
seconds of importing jax, so an interrupt at any point is one line and exit status 130."""

import sys


def main() -> int:
    """Entry point of the `lookahead-jax` console script."""
    # `_signal`, the C module under `signal`: importing `signal` builds its enums first, a window
    # of milliseconds in which a Ctrl-C would still be Python's KeyboardInterrupt (seen in CI).
    from _signal import SIG_IGN, SIGINT, getsignal, signal

    if getsignal(SIGINT) is not SIG_IGN:  # an ignored SIGINT (nohup, `&`) stays ignored

        def interrupted(signum, frame):
            import os

            os.write(2, b"lookahead-jax: interrupted\n")
            os._exit(130)

        signal(SIGINT, interrupted)
    from lookahead_jax.cli import main as cli_main  # the heavy imports

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
