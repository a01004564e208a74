"""Cryptography over key material, without the store: the ciphertext blob Encrypt and GenerateDataKey
return (:mod:`.blob`), and the RSA, ECC and HMAC algorithms of asymmetric keys (:mod:`.asymmetric`)."""
