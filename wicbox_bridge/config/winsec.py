"""The real :class:`~wicbox_bridge.config.winacl.WindowsSecurity`: the Windows API through ctypes.

Only this module calls Windows; it is the seam the tests replace with a fake (they run on Linux).
The calls: ``GetNamedSecurityInfoW`` / ``SetNamedSecurityInfoW`` with the DACL as SDDL
(``ConvertSecurityDescriptorToStringSecurityDescriptorW`` and back), ``LookupAccountNameW`` for an
account's SID, and the file attribute ``FILE_ATTRIBUTE_REPARSE_POINT`` for links and junctions.
"""

from __future__ import annotations

import ctypes
import os
import stat
from ctypes import wintypes
from pathlib import Path
from typing import Any

from wicbox_bridge.errors import ConfigurationError

_ctypes: Any = ctypes  # its Windows-only parts (WinDLL, windll) are not in Linux's stubs
_SE_FILE_OBJECT = 1
_DACL_SECURITY_INFORMATION = 0x4
_PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000
_SDDL_REVISION_1 = 1


def _reparse(path: Path) -> bool:
    try:
        attributes = getattr(os.lstat(path), "st_file_attributes", 0)
    except FileNotFoundError:
        return False
    return bool(attributes & getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400))


class WindowsApi:
    """The Windows calls; every failure becomes a ConfigurationError naming the folder."""

    def is_reparse_point(self, path: Path) -> bool:
        return _reparse(path)

    def read_dacl(self, path: Path) -> str:  # pragma: no cover - Windows only
        advapi = _ctypes.WinDLL("advapi32", use_last_error=True)
        descriptor = ctypes.c_void_p()
        code = advapi.GetNamedSecurityInfoW(
            str(path), _SE_FILE_OBJECT, _DACL_SECURITY_INFORMATION,
            None, None, None, None, ctypes.byref(descriptor),
        )  # fmt: skip
        if code:
            raise _failed("read the permissions of", path, code)
        text = wintypes.LPWSTR()
        try:
            if not advapi.ConvertSecurityDescriptorToStringSecurityDescriptorW(
                descriptor, _SDDL_REVISION_1, _DACL_SECURITY_INFORMATION, ctypes.byref(text), None
            ):
                raise _failed("read the permissions of", path, _ctypes.get_last_error())
            return str(text.value)
        finally:
            _ctypes.windll.kernel32.LocalFree(descriptor)
            _ctypes.windll.kernel32.LocalFree(text)

    def write_dacl(self, path: Path, sddl: str) -> None:  # pragma: no cover - Windows only
        advapi = _ctypes.WinDLL("advapi32", use_last_error=True)
        descriptor = ctypes.c_void_p()
        if not advapi.ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl, _SDDL_REVISION_1, ctypes.byref(descriptor), None
        ):
            raise _failed("set the permissions of", path, _ctypes.get_last_error())
        try:
            present, dacl, defaulted = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_int()
            advapi.GetSecurityDescriptorDacl(
                descriptor, ctypes.byref(present), ctypes.byref(dacl), ctypes.byref(defaulted)
            )
            info = _DACL_SECURITY_INFORMATION | (_PROTECTED_DACL_SECURITY_INFORMATION if "D:P" in sddl else 0)
            code = advapi.SetNamedSecurityInfoW(str(path), _SE_FILE_OBJECT, info, None, None, dacl, None)
            if code:
                raise _failed("set the permissions of", path, code)
        finally:
            _ctypes.windll.kernel32.LocalFree(descriptor)

    def account_sid(self, account: str) -> str:  # pragma: no cover - Windows only
        advapi = _ctypes.WinDLL("advapi32", use_last_error=True)
        sid = ctypes.create_string_buffer(256)
        sid_size, domain_size = wintypes.DWORD(256), wintypes.DWORD(256)
        domain = ctypes.create_unicode_buffer(256)
        use = wintypes.DWORD()
        if not advapi.LookupAccountNameW(
            None, account, sid, ctypes.byref(sid_size), domain, ctypes.byref(domain_size), ctypes.byref(use)
        ):
            raise ConfigurationError(
                f"the account {account} is unknown to Windows (error {_ctypes.get_last_error()})",
                fix="give the account as DOMAIN\\name (a gMSA as DOMAIN\\name$)",
            )
        text = wintypes.LPWSTR()
        advapi.ConvertSidToStringSidW(sid, ctypes.byref(text))
        try:
            return str(text.value)
        finally:
            _ctypes.windll.kernel32.LocalFree(text)

    def current_sid(self) -> str:  # pragma: no cover - Windows only
        user = os.environ.get("USERNAME", "")
        domain = os.environ.get("USERDOMAIN", "")
        return self.account_sid(f"{domain}\\{user}" if domain else user)


def _failed(action: str, path: Path, code: int) -> ConfigurationError:  # pragma: no cover - Windows only
    return ConfigurationError(
        f"cannot {action} {path} (Windows error {code})",
        fix="run the command as an administrator, or as the account the scheduled task runs as",
    )
