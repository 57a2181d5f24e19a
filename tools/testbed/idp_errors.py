"""The identity platform's OAuth error replies, with Microsoft's own AADSTS codes and wording.

The texts follow what Microsoft Entra ID answers (as seen in its error reference and in replies
that users have published); ``{EmailHidden}`` is how Entra ID itself masks a user name.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

ERROR_URI = "https://login.microsoftonline.com/error?code={code}"


class AadError(Exception):
    """An error reply of the token or discovery endpoint."""

    def __init__(
        self,
        code: int,
        error: str,
        message: str,
        *,
        status: int = 400,
        suberror: str | None = None,
    ) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.code = code
        self.error = error
        self.message = message
        self.status = status
        self.suberror = suberror

    def document(self, correlation_id: str, now: datetime) -> dict[str, Any]:
        """The JSON body Entra ID sends for this error."""
        trace_id = str(uuid.uuid4())
        timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        body: dict[str, Any] = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.message}\r\nTrace ID: {trace_id}\r\n"
                f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": ERROR_URI.format(code=self.code),
        }
        if self.suberror:
            body["suberror"] = self.suberror
        return body


def tenant_not_found(tenant: str, error: str = "invalid_tenant") -> AadError:
    return AadError(
        90002,
        error,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    )


def missing_parameter(name: str) -> AadError:
    return AadError(
        900144,
        "invalid_request",
        f"The request body must contain the following parameter: '{name}'.",
    )


def unsupported_grant_type(grant_type: str) -> AadError:
    return AadError(
        70003, "unsupported_grant_type", f"The app requested an unsupported grant type '{grant_type}'."
    )


def application_not_found(client_id: str, directory: str) -> AadError:
    return AadError(
        700016,
        "unauthorized_client",
        f"Application with identifier '{client_id}' was not found in the directory '{directory}'. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You may have sent your authentication "
        "request to the wrong tenant.",
    )


def client_secret_required() -> AadError:
    return AadError(
        7000218,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        status=401,
    )


def invalid_client_secret(client_id: str) -> AadError:
    return AadError(
        7000215,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the client "
        f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        status=401,
    )


def expired_client_secret(client_id: str) -> AadError:
    return AadError(
        7000222,
        "invalid_client",
        f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal "
        "to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
        "certificate credentials for added security: https://aka.ms/certCreds.",
        status=401,
    )


def invalid_username_or_password() -> AadError:
    return AadError(
        50126, "invalid_grant", "Error validating credentials due to invalid username or password."
    )


def user_not_in_directory(directory: str) -> AadError:
    return AadError(
        50034,
        "invalid_grant",
        f"The user account {{EmailHidden}} does not exist in the {directory} directory. To sign "
        "into this application, the account must be added to the directory.",
    )


def consent_required(client_id: str, app_name: str) -> AadError:
    return AadError(
        65001,
        "invalid_grant",
        f"The user or administrator has not consented to use the application with ID '{client_id}' "
        f"named '{app_name}'. Send an interactive authorization request for this user and resource.",
        suberror="consent_required",
    )


def mfa_required(resource_app_id: str) -> AadError:
    return AadError(
        50076,
        "invalid_grant",
        "Due to a configuration change made by your administrator, or because you moved to a new "
        f"location, you must use multi-factor authentication to access '{resource_app_id}'.",
        suberror="basic_action",
    )


def mfa_enrollment_required(resource_app_id: str) -> AadError:
    return AadError(
        50079,
        "invalid_grant",
        "Due to a configuration change made by your administrator, or because you moved to a new "
        f"location, you must enroll in multi-factor authentication to access '{resource_app_id}'.",
        suberror="basic_action",
    )


def client_credentials_scope_not_default(scope: str) -> AadError:
    return AadError(
        1002012,
        "invalid_scope",
        f"The provided value for scope {scope} is not valid. Client credential flows must have a "
        "scope value with /.default suffixed to the resource identifier (application ID URI).",
    )


def invalid_scope(scope: str) -> AadError:
    return AadError(
        70011,
        "invalid_scope",
        "The provided request must include a 'scope' input parameter. The provided value for the "
        f"input parameter 'scope' is not valid. The scope {scope} is not valid.",
    )


def scope_with_several_resources(scope: str) -> AadError:
    return AadError(
        28000,
        "invalid_scope",
        "Provided value for the input parameter scope is not valid because it contains more than "
        f"one resource. Scope {scope} is not valid.",
    )


def resource_not_found(resource: str, tenant_name: str) -> AadError:
    return AadError(
        500011,
        "invalid_resource",
        f"The resource principal named {resource} was not found in the tenant named {tenant_name}. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You might have sent your authentication "
        "request to the wrong tenant.",
    )


def grant_revoked(issued_at: datetime, valid_from: datetime) -> AadError:
    return AadError(
        50173,
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The "
        "user might have changed or reset their password. The grant was issued on "
        f"'{_iso(issued_at)}' and the TokensValidFrom date (before which tokens are not valid) for "
        f"this user is '{_iso(valid_from)}'.",
    )


def invalid_refresh_token() -> AadError:
    return AadError(
        70000,
        "invalid_grant",
        "The provided value for the input parameter 'refresh_token' or 'assertion' is not valid.",
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
