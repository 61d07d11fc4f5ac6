from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PromoteRequest(_message.Message):
    __slots__ = ("ref", "source", "destination")
    REF_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    ref: str
    source: str
    destination: str
    def __init__(self, ref: _Optional[str] = ..., source: _Optional[str] = ..., destination: _Optional[str] = ...) -> None: ...

class PromoteResponse(_message.Message):
    __slots__ = ("request_id", "kind", "source_environment", "destination_environment", "source_ref", "destination_ref", "digest", "unchanged", "bytes_copied", "duration_ms", "blobs_copied", "blobs_mounted", "blobs_skipped", "objects_copied", "objects_skipped", "promoted_by", "signed", "signature_key", "signature_error", "attested", "attestation_error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REF_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_REF_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    BYTES_COPIED_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_COPIED_FIELD_NUMBER: _ClassVar[int]
    BLOBS_MOUNTED_FIELD_NUMBER: _ClassVar[int]
    BLOBS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_COPIED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_BY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTESTED_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    kind: str
    source_environment: str
    destination_environment: str
    source_ref: str
    destination_ref: str
    digest: str
    unchanged: bool
    bytes_copied: int
    duration_ms: int
    blobs_copied: int
    blobs_mounted: int
    blobs_skipped: int
    objects_copied: int
    objects_skipped: int
    promoted_by: str
    signed: bool
    signature_key: str
    signature_error: str
    attested: bool
    attestation_error: str
    def __init__(self, request_id: _Optional[str] = ..., kind: _Optional[str] = ..., source_environment: _Optional[str] = ..., destination_environment: _Optional[str] = ..., source_ref: _Optional[str] = ..., destination_ref: _Optional[str] = ..., digest: _Optional[str] = ..., unchanged: _Optional[bool] = ..., bytes_copied: _Optional[int] = ..., duration_ms: _Optional[int] = ..., blobs_copied: _Optional[int] = ..., blobs_mounted: _Optional[int] = ..., blobs_skipped: _Optional[int] = ..., objects_copied: _Optional[int] = ..., objects_skipped: _Optional[int] = ..., promoted_by: _Optional[str] = ..., signed: _Optional[bool] = ..., signature_key: _Optional[str] = ..., signature_error: _Optional[str] = ..., attested: _Optional[bool] = ..., attestation_error: _Optional[str] = ...) -> None: ...

class PromoteProgress(_message.Message):
    __slots__ = ("bytes_copied", "done", "total")
    BYTES_COPIED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    bytes_copied: int
    done: int
    total: int
    def __init__(self, bytes_copied: _Optional[int] = ..., done: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class PromoteEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: PromoteProgress
    result: PromoteResponse
    def __init__(self, progress: _Optional[_Union[PromoteProgress, _Mapping]] = ..., result: _Optional[_Union[PromoteResponse, _Mapping]] = ...) -> None: ...

class AuthCheckRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthCheckResponse(_message.Message):
    __slots__ = ("subject", "email", "name", "groups", "expires_at", "destinations")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    email: str
    name: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    expires_at: int
    destinations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subject: _Optional[str] = ..., email: _Optional[str] = ..., name: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., expires_at: _Optional[int] = ..., destinations: _Optional[_Iterable[str]] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Environment(_message.Message):
    __slots__ = ("name", "registry", "spa_suffix", "allowed_groups")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    SPA_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    registry: str
    spa_suffix: str
    allowed_groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., registry: _Optional[str] = ..., spa_suffix: _Optional[str] = ..., allowed_groups: _Optional[_Iterable[str]] = ...) -> None: ...

class ServerInfoResponse(_message.Message):
    __slots__ = ("version", "issuer_url", "audience", "environments", "default_source")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ISSUER_URL_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    issuer_url: str
    audience: str
    environments: _containers.RepeatedCompositeFieldContainer[Environment]
    default_source: str
    def __init__(self, version: _Optional[str] = ..., issuer_url: _Optional[str] = ..., audience: _Optional[str] = ..., environments: _Optional[_Iterable[_Union[Environment, _Mapping]]] = ..., default_source: _Optional[str] = ...) -> None: ...
