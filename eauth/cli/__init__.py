"""The ``eauth`` command line. Acts as the local CA administrator; every change is audited.

Each area has its own module registering commands on ``app`` (platform, identity, ca, sso,
signing, admin). Problems become one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from core.errors import Problem, from_hsm
from hsm.errors import HsmError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help="eAuth platform command line")

EXIT_CODES = {400: 2, 401: 3, 403: 3, 404: 4, 409: 5, 413: 2, 415: 2, 422: 2, 429: 6, 500: 1, 503: 7}


class State:
    json_output = False


state = State()


@app.callback()
def _options(json_output: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    state.json_output = json_output


def emit(data: Any, text: str | None = None) -> None:
    """Print a result: JSON with ``--json``, otherwise ``text`` (or JSON when no text form exists)."""
    if state.json_output or text is None:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        typer.echo(text)


def fail(problem: Problem) -> None:
    if state.json_output:
        typer.echo(json.dumps(problem.to_dict(), ensure_ascii=False), err=True)
    else:
        typer.echo(f"error: {problem.detail} [{problem.code}]", err=True)
    raise SystemExit(EXIT_CODES.get(problem.status, 1))


def main() -> None:
    from eauth.cli import admin as _admin  # noqa: F401  (registers commands)
    from eauth.cli import ca as _ca  # noqa: F401
    from eauth.cli import identity as _identity  # noqa: F401
    from eauth.cli import platform as _platform  # noqa: F401
    from eauth.cli import revocation as _revocation  # noqa: F401
    from eauth.cli import signing as _signing  # noqa: F401
    from eauth.cli import sso as _sso  # noqa: F401

    try:
        app(standalone_mode=False)
    except Problem as exc:
        fail(exc)
    except HsmError as exc:
        fail(from_hsm(exc))
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
    sys.exit(0)
