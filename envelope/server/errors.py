"""AWS KMS errors as the wire sends them: an ``__type`` and an HTTP status.

SDKs pick the exception class from ``__type`` alone, so these names are
AWS's, letter for letter (botocore's KMS service model lists the
operation-specific ones; the rest are the common errors of every AWS JSON
service).  Every refusal the server sends is one of these; anything else that
escapes a handler becomes :class:`KMSInternalException` with a message that
names no internals.
"""

from __future__ import annotations

import json


class AwsError(Exception):
    """One AWS error response.  *message* goes to the client: it must never hold key material."""

    code = "KMSInternalException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        """The JSON 1.1 error document."""
        return json.dumps({"__type": self.code, "message": self.message}).encode()


def _error(code: str, status: int = 400) -> type[AwsError]:
    return type(code, (AwsError,), {"code": code, "status": status, "__module__": __name__})


# Operation errors (botocore's KMS service model).
AlreadyExistsException = _error("AlreadyExistsException")
DisabledException = _error("DisabledException")
IncorrectKeyException = _error("IncorrectKeyException")
IncorrectKeyMaterialException = _error("IncorrectKeyMaterialException")
ExpiredImportTokenException = _error("ExpiredImportTokenException")
InvalidAliasNameException = _error("InvalidAliasNameException")
InvalidArnException = _error("InvalidArnException")
InvalidCiphertextException = _error("InvalidCiphertextException")
InvalidGrantIdException = _error("InvalidGrantIdException")
InvalidGrantTokenException = _error("InvalidGrantTokenException")
InvalidImportTokenException = _error("InvalidImportTokenException")
InvalidKeyUsageException = _error("InvalidKeyUsageException")
InvalidMarkerException = _error("InvalidMarkerException")
KMSInternalException = _error("KMSInternalException", 500)
KMSInvalidMacException = _error("KMSInvalidMacException")
KMSInvalidSignatureException = _error("KMSInvalidSignatureException")
KMSInvalidStateException = _error("KMSInvalidStateException")
LimitExceededException = _error("LimitExceededException")
MalformedPolicyDocumentException = _error("MalformedPolicyDocumentException")
NotFoundException = _error("NotFoundException")
TagException = _error("TagException")
UnsupportedOperationException = _error("UnsupportedOperationException")

# Common errors of every AWS JSON service.
AccessDeniedException = _error("AccessDeniedException")
IncompleteSignatureException = _error("IncompleteSignatureException")
InvalidSignatureException = _error("InvalidSignatureException")
UnrecognizedClientException = _error("UnrecognizedClientException")
ThrottlingException = _error("ThrottlingException")
ValidationException = _error("ValidationException")
UnknownOperationException = _error("UnknownOperationException")
SerializationException = _error("SerializationException")
