"""S3 client-side encryption with envelope files as objects (``pip install 'envelope[s3]'``)."""

from .client import EncryptedS3Client

__all__ = ["EncryptedS3Client"]
