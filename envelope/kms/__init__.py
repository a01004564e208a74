"""The local KMS: AWS KMS's calls and semantics over a private SQLite keystore.

:class:`envelope.kms.store.KeyStore` is the top; below it, each layer imports
only the layers under it:

- ``operations/``: the KMS calls, one mix-in per family, assembled into the keystore;
- ``storage/``: the keystore file, its schema and transactions, the wrapping key, sealed backing keys;
- ``crypto/``: the ciphertext blob and the asymmetric and HMAC algorithms, over key material;
- ``policy/``: who is calling, key policies and grants, and the decision every call passes;
- ``model/``: what a key is: its metadata and names, its states and schedules, the clock.
"""
