# mypy: ignore-errors
# ruff: noqa
# fmt: off
# Generated from glimpse/events_pb/filer.proto (a trimmed copy of SeaweedFS
# weed/pb/filer.proto) by the protoc bundled in grpcio-tools 1.85.1 (libprotoc
# 35.1: gencode 7.35.1, which the protobuf 7.36.x runtime accepts). From the
# repository root, in a throwaway venv:
#   python3.11 -m venv /tmp/protoc-venv
#   /tmp/protoc-venv/bin/pip install grpcio-tools==1.85.1
#   /tmp/protoc-venv/bin/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \
#       glimpse/events_pb/filer.proto
# then this header was prepended to filer_pb2.py and filer_pb2.pyi. The .pyi also
# gets the three lines above it: generated code is neither --strict clean nor in
# ruff's style, yet mypy still reads the types from it. Do not edit by hand.
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SSEType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NONE: _ClassVar[SSEType]
    SSE_C: _ClassVar[SSEType]
    SSE_KMS: _ClassVar[SSEType]
    SSE_S3: _ClassVar[SSEType]
NONE: SSEType
SSE_C: SSEType
SSE_KMS: SSEType
SSE_S3: SSEType

class EventNotification(_message.Message):
    __slots__ = ("old_entry", "new_entry", "delete_chunks", "new_parent_path", "is_from_other_cluster", "signatures")
    OLD_ENTRY_FIELD_NUMBER: _ClassVar[int]
    NEW_ENTRY_FIELD_NUMBER: _ClassVar[int]
    DELETE_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    NEW_PARENT_PATH_FIELD_NUMBER: _ClassVar[int]
    IS_FROM_OTHER_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    old_entry: Entry
    new_entry: Entry
    delete_chunks: bool
    new_parent_path: str
    is_from_other_cluster: bool
    signatures: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, old_entry: _Optional[_Union[Entry, _Mapping]] = ..., new_entry: _Optional[_Union[Entry, _Mapping]] = ..., delete_chunks: _Optional[bool] = ..., new_parent_path: _Optional[str] = ..., is_from_other_cluster: _Optional[bool] = ..., signatures: _Optional[_Iterable[int]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("name", "is_directory", "chunks", "attributes", "extended", "hard_link_id", "hard_link_counter", "content", "remote_entry", "quota", "worm_enforced_at_ts_ns")
    class ExtendedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    IS_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_FIELD_NUMBER: _ClassVar[int]
    HARD_LINK_ID_FIELD_NUMBER: _ClassVar[int]
    HARD_LINK_COUNTER_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ENTRY_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    WORM_ENFORCED_AT_TS_NS_FIELD_NUMBER: _ClassVar[int]
    name: str
    is_directory: bool
    chunks: _containers.RepeatedCompositeFieldContainer[FileChunk]
    attributes: FuseAttributes
    extended: _containers.ScalarMap[str, bytes]
    hard_link_id: bytes
    hard_link_counter: int
    content: bytes
    remote_entry: RemoteEntry
    quota: int
    worm_enforced_at_ts_ns: int
    def __init__(self, name: _Optional[str] = ..., is_directory: _Optional[bool] = ..., chunks: _Optional[_Iterable[_Union[FileChunk, _Mapping]]] = ..., attributes: _Optional[_Union[FuseAttributes, _Mapping]] = ..., extended: _Optional[_Mapping[str, bytes]] = ..., hard_link_id: _Optional[bytes] = ..., hard_link_counter: _Optional[int] = ..., content: _Optional[bytes] = ..., remote_entry: _Optional[_Union[RemoteEntry, _Mapping]] = ..., quota: _Optional[int] = ..., worm_enforced_at_ts_ns: _Optional[int] = ...) -> None: ...

class RemoteEntry(_message.Message):
    __slots__ = ("storage_name", "last_local_sync_ts_ns", "remote_e_tag", "remote_mtime", "remote_size", "remote_content_encoding")
    STORAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_LOCAL_SYNC_TS_NS_FIELD_NUMBER: _ClassVar[int]
    REMOTE_E_TAG_FIELD_NUMBER: _ClassVar[int]
    REMOTE_MTIME_FIELD_NUMBER: _ClassVar[int]
    REMOTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_CONTENT_ENCODING_FIELD_NUMBER: _ClassVar[int]
    storage_name: str
    last_local_sync_ts_ns: int
    remote_e_tag: str
    remote_mtime: int
    remote_size: int
    remote_content_encoding: str
    def __init__(self, storage_name: _Optional[str] = ..., last_local_sync_ts_ns: _Optional[int] = ..., remote_e_tag: _Optional[str] = ..., remote_mtime: _Optional[int] = ..., remote_size: _Optional[int] = ..., remote_content_encoding: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("file_id", "offset", "size", "modified_ts_ns", "e_tag", "source_file_id", "fid", "source_fid", "cipher_key", "is_compressed", "is_chunk_manifest", "sse_type", "sse_metadata")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_TS_NS_FIELD_NUMBER: _ClassVar[int]
    E_TAG_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FID_FIELD_NUMBER: _ClassVar[int]
    CIPHER_KEY_FIELD_NUMBER: _ClassVar[int]
    IS_COMPRESSED_FIELD_NUMBER: _ClassVar[int]
    IS_CHUNK_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    offset: int
    size: int
    modified_ts_ns: int
    e_tag: str
    source_file_id: str
    fid: FileId
    source_fid: FileId
    cipher_key: bytes
    is_compressed: bool
    is_chunk_manifest: bool
    sse_type: SSEType
    sse_metadata: bytes
    def __init__(self, file_id: _Optional[str] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., modified_ts_ns: _Optional[int] = ..., e_tag: _Optional[str] = ..., source_file_id: _Optional[str] = ..., fid: _Optional[_Union[FileId, _Mapping]] = ..., source_fid: _Optional[_Union[FileId, _Mapping]] = ..., cipher_key: _Optional[bytes] = ..., is_compressed: _Optional[bool] = ..., is_chunk_manifest: _Optional[bool] = ..., sse_type: _Optional[_Union[SSEType, str]] = ..., sse_metadata: _Optional[bytes] = ...) -> None: ...

class FileId(_message.Message):
    __slots__ = ("volume_id", "file_key", "cookie")
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_KEY_FIELD_NUMBER: _ClassVar[int]
    COOKIE_FIELD_NUMBER: _ClassVar[int]
    volume_id: int
    file_key: int
    cookie: int
    def __init__(self, volume_id: _Optional[int] = ..., file_key: _Optional[int] = ..., cookie: _Optional[int] = ...) -> None: ...

class FuseAttributes(_message.Message):
    __slots__ = ("file_size", "mtime", "file_mode", "uid", "gid", "crtime", "mime", "ttl_sec", "user_name", "group_name", "symlink_target", "md5", "rdev", "inode", "ctime", "mtime_ns", "ctime_ns", "crtime_ns", "atime", "atime_ns")
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    CRTIME_FIELD_NUMBER: _ClassVar[int]
    MIME_FIELD_NUMBER: _ClassVar[int]
    TTL_SEC_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    MD5_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    INODE_FIELD_NUMBER: _ClassVar[int]
    CTIME_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CRTIME_NS_FIELD_NUMBER: _ClassVar[int]
    ATIME_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    file_size: int
    mtime: int
    file_mode: int
    uid: int
    gid: int
    crtime: int
    mime: str
    ttl_sec: int
    user_name: str
    group_name: _containers.RepeatedScalarFieldContainer[str]
    symlink_target: str
    md5: bytes
    rdev: int
    inode: int
    ctime: int
    mtime_ns: int
    ctime_ns: int
    crtime_ns: int
    atime: int
    atime_ns: int
    def __init__(self, file_size: _Optional[int] = ..., mtime: _Optional[int] = ..., file_mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., crtime: _Optional[int] = ..., mime: _Optional[str] = ..., ttl_sec: _Optional[int] = ..., user_name: _Optional[str] = ..., group_name: _Optional[_Iterable[str]] = ..., symlink_target: _Optional[str] = ..., md5: _Optional[bytes] = ..., rdev: _Optional[int] = ..., inode: _Optional[int] = ..., ctime: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., ctime_ns: _Optional[int] = ..., crtime_ns: _Optional[int] = ..., atime: _Optional[int] = ..., atime_ns: _Optional[int] = ...) -> None: ...
