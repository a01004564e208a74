/*
 * chunk.c - the chunk cipher: AES-256-GCM on OpenSSL EVP, one STREAM chunk
 * at a time.
 *
 * No cipher code lives here; OpenSSL does the AES and GHASH (with AES-NI and
 * PCLMULQDQ where present) and compares tags in constant time.  This file
 * owns the nonce layout and the one-chunk calls every other file uses.
 */
#define _POSIX_C_SOURCE 200809L

#include "engine_internal.h"

#if defined(__has_include)
#if !__has_include(<openssl/evp.h>)
#error "openssl/evp.h not found: install the OpenSSL development headers (Debian/Ubuntu: apt-get install libssl-dev; Fedora/RHEL: dnf install openssl-devel)"
#endif
#endif

#include <openssl/crypto.h>
#include <pthread.h>
#include <string.h>

static const EVP_CIPHER *gcm_cipher;
static pthread_once_t cipher_once = PTHREAD_ONCE_INIT;

static void fetch_cipher(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    /* Fetched once: handing EVP_aes_256_gcm() to every new context would
     * repeat the provider lookup, which takes a global lock, per context. */
    gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
#else
    gcm_cipher = EVP_aes_256_gcm();
#endif
}

const char *env_openssl_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

const EVP_CIPHER *env_cipher(void)
{
    pthread_once(&cipher_once, fetch_cipher);
    return gcm_cipher;
}

void env_chunk_nonce(uint8_t nonce[ENV_NONCE_SIZE], uint64_t index, int last)
{
    /* The wire carries an 88-bit counter; the top three bytes stay zero
     * because the engine stops at 2^64 - 1 (checked by the callers). */
    memset(nonce, 0, 3);
    for (int b = 0; b < 8; b++)
        nonce[3 + b] = (uint8_t)(index >> (56 - 8 * b));
    nonce[11] = last ? 0x01 : 0x00;
}

EVP_CIPHER_CTX *env_keyed_ctx(const uint8_t *key, int encrypt, int *rc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (!ctx) {
        *rc = ENV_ERR_NOMEM;
        return NULL;
    }
    /* The key schedule is computed once here; each chunk only resets the IV. */
    if (EVP_CipherInit_ex(ctx, env_cipher(), NULL, key, NULL, encrypt) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        *rc = ENV_ERR_CRYPTO;
        return NULL;
    }
    *rc = ENV_OK;
    return ctx;
}

int env_seal_one(EVP_CIPHER_CTX *ctx, const uint8_t *nonce, const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t scratch[ENV_TAG_SIZE];
    int outl = 0, finl = 0;

    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        return ENV_ERR_CRYPTO;
    /* The empty final chunk of an empty stream skips Update: its sealed
     * form is the tag alone. */
    if (len && (EVP_EncryptUpdate(ctx, out, &outl, in, (int)len) != 1 || (size_t)outl != len))
        return ENV_ERR_CRYPTO;
    /* GCM's Final emits no bytes; scratch keeps a pointer valid for it. */
    if (EVP_EncryptFinal_ex(ctx, scratch, &finl) != 1 || finl != 0)
        return ENV_ERR_CRYPTO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, ENV_TAG_SIZE, out + len) != 1)
        return ENV_ERR_CRYPTO;
    return ENV_OK;
}

int env_open_one(EVP_CIPHER_CTX *ctx, const uint8_t *nonce, const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t tag[ENV_TAG_SIZE], scratch[ENV_TAG_SIZE];
    int outl = 0, finl = 0;

    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        return ENV_ERR_CRYPTO;
    memcpy(tag, in + len, ENV_TAG_SIZE); /* SET_TAG takes a non-const pointer */
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, ENV_TAG_SIZE, tag) != 1)
        return ENV_ERR_CRYPTO;
    if (len && (EVP_DecryptUpdate(ctx, out, &outl, in, (int)len) != 1 || (size_t)outl != len))
        return ENV_ERR_CRYPTO;
    /* The tag is compared here, by OpenSSL, in constant time. */
    if (EVP_DecryptFinal_ex(ctx, scratch, &finl) != 1)
        return ENV_ERR_AUTH;
    return ENV_OK;
}
