/*
 * kdf.c - HKDF-SHA-512, HMAC-SHA-256 and a constant-time compare, for the v1 key schedule.
 *
 * envelope.kdf derives every file's payload key, header key and commitment
 * with HKDF-SHA-512, MACs the header with HMAC-SHA-256 and checks the MAC and
 * the key commitment in constant time (CRYPTO_memcmp).  All come from
 * OpenSSL here, so that a process which already loads this library for the
 * chunks need not also load pyca/cryptography (about 10 ms of start-up) for
 * a few hundred bytes of key schedule.  The results are the standard functions'
 * (RFC 5869, RFC 2104): tests/test_primitives.py checks them against
 * pyca/cryptography and the RFC 5869 vectors.
 */
#define _POSIX_C_SOURCE 200809L

#include "engine_internal.h"

#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <pthread.h>

static EVP_KDF *hkdf;
static EVP_MD *sha256;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
    /* Fetched once, as chunk.c does for the cipher: the implicit fetch behind
     * EVP_PKEY_CTX_new_id() and EVP_sha256() repeats a provider lookup under a
     * global lock on every call, which made one HKDF three times pyca's. */
    hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int hkdf_derive(const uint8_t *key, size_t key_len, const uint8_t *salt, size_t salt_len,
                       const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    pthread_once(&fetch_once, fetch);
    if (!hkdf)
        return ENV_ERR_CRYPTO;
    EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(hkdf);
    if (!kctx)
        return ENV_ERR_NOMEM;
    static const uint8_t empty[1];
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA512", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(key_len ? key : empty), key_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(salt_len ? salt : empty), salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(info_len ? info : empty), info_len),
        OSSL_PARAM_construct_end(),
    };
    int rc = EVP_KDF_derive(kctx, out, out_len, params) == 1 ? ENV_OK : ENV_ERR_CRYPTO;
    EVP_KDF_CTX_free(kctx); /* frees (and cleanses) its copies of the key and salt */
    return rc;
}

static const EVP_MD *hmac_md(void)
{
    pthread_once(&fetch_once, fetch);
    return sha256;
}
#else
static int hkdf_derive(const uint8_t *key, size_t key_len, const uint8_t *salt, size_t salt_len,
                       const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (!pctx)
        return ENV_ERR_NOMEM;
    size_t got = out_len;
    int rc = ENV_ERR_CRYPTO;
    if (EVP_PKEY_derive_init(pctx) == 1 &&
        EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha512()) == 1 &&
        EVP_PKEY_CTX_set1_hkdf_salt(pctx, salt, (int)salt_len) == 1 &&
        EVP_PKEY_CTX_set1_hkdf_key(pctx, key, (int)key_len) == 1 &&
        (!info_len || EVP_PKEY_CTX_add1_hkdf_info(pctx, info, (int)info_len) == 1) &&
        EVP_PKEY_derive(pctx, out, &got) == 1 && got == out_len)
        rc = ENV_OK;
    EVP_PKEY_CTX_free(pctx); /* frees (and cleanses) its copies of the key and salt */
    return rc;
}

static const EVP_MD *hmac_md(void)
{
    return EVP_sha256();
}
#endif

int env_hkdf_sha512(const uint8_t *key, size_t key_len, const uint8_t *salt, size_t salt_len,
                    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    /* RFC 5869 caps the output at 255 hash lengths; EVP counts in ints. */
    if ((!key && key_len) || key_len > INT_MAX || (!salt && salt_len) || salt_len > INT_MAX ||
        (!info && info_len) || info_len > INT_MAX || !out || out_len < 1 || out_len > 255 * 64)
        return ENV_ERR_ARG;
    int rc = hkdf_derive(key, key_len, salt, salt_len, info, info_len, out, out_len);
    if (rc != ENV_OK)
        OPENSSL_cleanse(out, out_len);
    return rc;
}

int env_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t data_len,
                    uint8_t out[ENV_HMAC_SHA256_SIZE])
{
    unsigned int got = 0;
    if ((!key && key_len) || key_len > INT_MAX || (!data && data_len) || !out)
        return ENV_ERR_ARG;
    /* HMAC() wants a non-NULL key even when it is empty. */
    static const uint8_t empty[1];
    const EVP_MD *md = hmac_md();
    if (!md || !HMAC(md, key_len ? key : empty, (int)key_len, data_len ? data : empty, data_len, out, &got) ||
        got != ENV_HMAC_SHA256_SIZE)
        return ENV_ERR_CRYPTO;
    return ENV_OK;
}

int env_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    return len == 0 || (a && b && CRYPTO_memcmp(a, b, len) == 0);
}
