"""Where dataset bytes live: a local directory (embedded default) or any S3 (boto3).

Both keep one content-addressed layout: ``objects/<hash[:2]>/<hash[2:]>`` (blake3, hex), below
the directory or the bucket prefix. An object appears whole or not at all, and every read
checks the content against its name, so a corrupted object is reported, never served.
"""
from .base import CorruptObject, ObjectMismatch, ObjectStore, ObjectWriter, StoredObject, object_key
from .config import StoreSettings, store_from_settings
from .local import LocalStore
from .s3 import S3Store

__all__ = ["CorruptObject", "ObjectMismatch", "ObjectStore", "ObjectWriter", "StoredObject",
           "object_key", "StoreSettings", "store_from_settings",
           "LocalStore", "S3Store"]
