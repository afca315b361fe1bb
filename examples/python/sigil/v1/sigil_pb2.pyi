from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppendRequest(_message.Message):
    __slots__ = ("chain", "record_json", "correlation_id")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    chain: str
    record_json: str
    correlation_id: int
    def __init__(self, chain: _Optional[str] = ..., record_json: _Optional[str] = ..., correlation_id: _Optional[int] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("chain", "chain_seq", "receipt_hash", "receipt_json", "correlation_id")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    CHAIN_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_HASH_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_JSON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    chain: str
    chain_seq: int
    receipt_hash: str
    receipt_json: str
    correlation_id: int
    def __init__(self, chain: _Optional[str] = ..., chain_seq: _Optional[int] = ..., receipt_hash: _Optional[str] = ..., receipt_json: _Optional[str] = ..., correlation_id: _Optional[int] = ...) -> None: ...

class AppendError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class AppendStreamReply(_message.Message):
    __slots__ = ("correlation_id", "receipt", "error")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    correlation_id: int
    receipt: AppendResponse
    error: AppendError
    def __init__(self, correlation_id: _Optional[int] = ..., receipt: _Optional[_Union[AppendResponse, _Mapping]] = ..., error: _Optional[_Union[AppendError, _Mapping]] = ...) -> None: ...

class SignDigestRequest(_message.Message):
    __slots__ = ("key", "digest")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    key: str
    digest: bytes
    def __init__(self, key: _Optional[str] = ..., digest: _Optional[bytes] = ...) -> None: ...

class SignDigestResponse(_message.Message):
    __slots__ = ("signature", "signer_key", "key_version", "ledger_chain", "ledger_seq")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNER_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEDGER_CHAIN_FIELD_NUMBER: _ClassVar[int]
    LEDGER_SEQ_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    signer_key: str
    key_version: str
    ledger_chain: str
    ledger_seq: int
    def __init__(self, signature: _Optional[bytes] = ..., signer_key: _Optional[str] = ..., key_version: _Optional[str] = ..., ledger_chain: _Optional[str] = ..., ledger_seq: _Optional[int] = ...) -> None: ...

class GetDirectoryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDirectoryResponse(_message.Message):
    __slots__ = ("directory_json",)
    DIRECTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    directory_json: str
    def __init__(self, directory_json: _Optional[str] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateKeyResponse(_message.Message):
    __slots__ = ("keyid", "public_key")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    public_key: str
    def __init__(self, keyid: _Optional[str] = ..., public_key: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("directory_json",)
    DIRECTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    directory_json: str
    def __init__(self, directory_json: _Optional[str] = ...) -> None: ...

class RotateKeyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RotateKeyResponse(_message.Message):
    __slots__ = ("previous_keyid", "keyid", "public_key", "chains")
    PREVIOUS_KEYID_FIELD_NUMBER: _ClassVar[int]
    KEYID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    previous_keyid: str
    keyid: str
    public_key: str
    chains: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, previous_keyid: _Optional[str] = ..., keyid: _Optional[str] = ..., public_key: _Optional[str] = ..., chains: _Optional[_Iterable[str]] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("name", "version", "reason", "compromised_since")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMPROMISED_SINCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    reason: str
    compromised_since: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ..., compromised_since: _Optional[str] = ...) -> None: ...

class RevokeKeyResponse(_message.Message):
    __slots__ = ("keyid", "chains", "rotated_to")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    ROTATED_TO_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    chains: _containers.RepeatedScalarFieldContainer[str]
    rotated_to: str
    def __init__(self, keyid: _Optional[str] = ..., chains: _Optional[_Iterable[str]] = ..., rotated_to: _Optional[str] = ...) -> None: ...
