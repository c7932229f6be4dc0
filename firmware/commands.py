"""The control socket's commands, each a thin call into the user agent.

Names and fields are the contract documented in the README; keep them stable.
"""

from __future__ import annotations

from typing import Any

from firmware.control import CommandError, UnknownCommand
from firmware.sip.errors import ParseError
from firmware.sip.transaction import LocalProtocolError
from firmware.ua import UserAgent


class Commands:
    def __init__(self, ua: UserAgent) -> None:
        self._ua = ua

    def __call__(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        if command == "status":
            return self._ua.status()
        if command in ("register", "unregister"):
            account = _optional_account(args)
            try:
                if command == "register":
                    self._ua.register(account)
                else:
                    self._ua.unregister(account)
            except KeyError as error:
                raise CommandError(str(error.args[0])) from None
            return {}
        if command == "message":
            to, text = args.get("to"), args.get("text")
            if not isinstance(to, str) or not isinstance(text, str):
                raise CommandError("'to' (a SIP URI) and 'text' are needed")
            account = _optional_account(args)
            try:
                return {"message": self._ua.send_message(to, text, account)}
            except ParseError as error:
                raise CommandError(f"'to' is not a SIP URI: {error}") from None
            except KeyError as error:
                raise CommandError(str(error.args[0])) from None
        if command == "dial":
            to = args.get("uri")
            if not isinstance(to, str):
                raise CommandError("'uri' (a SIP URI) is needed")
            try:
                return {"call": self._ua.dial(to, _optional_account(args))}
            except ParseError as error:
                raise CommandError(f"'uri' is not a SIP URI: {error}") from None
            except KeyError as error:
                raise CommandError(str(error.args[0])) from None
        if command in ("answer", "hangup", "hold", "resume"):
            call = args.get("call")
            status = args.get("status")
            if call is not None and not isinstance(call, str):
                raise CommandError("'call' must be a call id string")
            if status is not None and (
                not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 699
            ):
                raise CommandError("'status' must be a SIP status from 400 to 699")
            try:
                self._ua.call_command(command, call, status)
            except KeyError as error:
                raise CommandError(str(error.args[0])) from None
            except LookupError:
                raise CommandError("ambiguous: say which 'call'") from None
            except LocalProtocolError as error:
                raise CommandError(f"cannot {command} now: {error}") from None
            return {}
        if command == "trace":
            enabled = args.get("on")
            if not isinstance(enabled, bool):
                raise CommandError("'on' must be true or false")
            self._ua.set_trace(enabled)
            return {"on": enabled}
        raise UnknownCommand(f"unknown command {command!r}")


def _optional_account(args: dict[str, Any]) -> str | None:
    account = args.get("account")
    if account is not None and not isinstance(account, str):
        raise CommandError("'account' must be a SIP URI string")
    return account
