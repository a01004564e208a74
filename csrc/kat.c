/*
 * kat.c - single-shot AES-256-GCM with any IV, AAD and tag length.
 *
 * Not used by the chunk loops: the keystore seals its keys with it
 * (envelope.engines.primitives), and known-answer tests (NIST CAVP,
 * Wycheproof) prove with it that this library's OpenSSL path is standard GCM.
 */
#define _POSIX_C_SOURCE 200809L

#include "engine_internal.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>

static int raw_gcm(int enc, const uint8_t *key, size_t key_len, const uint8_t *iv,
                   size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t in_len, uint8_t *out, uint8_t *tag, size_t tag_len)
{
    uint8_t scratch[ENV_TAG_SIZE];
    int outl = 0, rc = ENV_ERR_CRYPTO;

    /* GCM allows any IV from 1 byte up (longer ones are GHASHed), OpenSSL
     * only up to 128, and tags of 4 to 16 bytes; EVP counts in ints. */
    if (!key || key_len != ENV_KEY_SIZE || !iv || iv_len < 1 || iv_len > ENV_MAX_IV_SIZE ||
        (!aad && aad_len) || aad_len > INT_MAX || (!in && in_len) || (!out && in_len) ||
        in_len > INT_MAX || !tag || tag_len < 4 || tag_len > ENV_TAG_SIZE)
        return ENV_ERR_ARG;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return ENV_ERR_NOMEM;
    if (EVP_CipherInit_ex(ctx, env_cipher(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, (int)iv_len, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1 ||
        (aad_len && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) ||
        (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)tag_len, tag) != 1) ||
        (in_len && (EVP_CipherUpdate(ctx, out, &outl, in, (int)in_len) != 1 ||
                    (size_t)outl != in_len)))
        goto done;
    if (EVP_CipherFinal_ex(ctx, scratch, &outl) != 1)
        rc = enc ? ENV_ERR_CRYPTO : ENV_ERR_AUTH;
    else if (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, (int)tag_len, tag) == 1)
        rc = ENV_OK;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (rc != ENV_OK && !enc && in_len)
        OPENSSL_cleanse(out, in_len); /* no unauthenticated plaintext */
    return rc;
}

int env_gcm_encrypt(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    uint8_t *out, uint8_t *tag, size_t tag_len)
{
    return raw_gcm(1, key, key_len, iv, iv_len, aad, aad_len, in, in_len, out, tag, tag_len);
}

int env_gcm_decrypt(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    const uint8_t *tag, size_t tag_len, uint8_t *out)
{
    uint8_t tag_copy[ENV_TAG_SIZE] = {0}; /* SET_TAG takes a non-const pointer */

    if (tag && tag_len <= ENV_TAG_SIZE)
        memcpy(tag_copy, tag, tag_len);
    return raw_gcm(0, key, key_len, iv, iv_len, aad, aad_len, in, in_len, out,
                   tag ? tag_copy : NULL, tag_len);
}
