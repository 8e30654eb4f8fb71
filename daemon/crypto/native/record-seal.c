/*
 * AES-256-GCM into a buffer the caller gives: a Node addon (N-API) for the encryption workers.
 *
 * Node's cipher returns a new buffer per update, zeroed, which the worker then copies into the
 * shared buffer its batch is sealed into: that cost twice what AES-GCM itself does here. This
 * encrypts straight into that buffer, with OpenSSL's EVP interface (the OpenSSL Node is built with
 * and exports), so the bytes are those Node's cipher makes and daemon/crypto/record-cipher.ts opens.
 *
 * seal(key, nonce, aad, plain, out, at): the ciphertext of `plain` at out[at...], its 16-byte tag
 * right after. One cipher context per thread (N-API instance data), keyed anew only when the key
 * changes (a volume's records share one).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16

struct sealer {
	EVP_CIPHER_CTX *ctx;
	unsigned char key[KEY_BYTES];
	int keyed;
};

static void free_sealer(napi_env env, void *data, void *hint)
{
	(void)env, (void)hint;
	struct sealer *s = data;
	EVP_CIPHER_CTX_free(s->ctx);
	OPENSSL_cleanse(s->key, sizeof(s->key));
	free(s);
}

/* The bytes of a typed array argument (a Buffer, or a view of shared memory). */
static int bytes_of(napi_env env, napi_value v, unsigned char **data, size_t *length)
{
	bool is;
	napi_typedarray_type type;
	if (napi_is_typedarray(env, v, &is) != napi_ok || !is)
		return -1;
	if (napi_get_typedarray_info(env, v, &type, length, (void **)data, NULL, NULL) != napi_ok || type != napi_uint8_array)
		return -1;
	return 0;
}

static napi_value fail(napi_env env, const char *why)
{
	napi_throw_error(env, NULL, why);
	return NULL;
}

static napi_value seal(napi_env env, napi_callback_info info)
{
	size_t argc = 6;
	napi_value argv[6];
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6)
		return fail(env, "seal(key, nonce, aad, plain, out, at) takes six arguments");
	unsigned char *key, *nonce, *aad, *plain, *out;
	size_t key_len, nonce_len, aad_len, plain_len, out_len;
	int64_t at;
	if (bytes_of(env, argv[0], &key, &key_len) || bytes_of(env, argv[1], &nonce, &nonce_len) || bytes_of(env, argv[2], &aad, &aad_len) ||
	    bytes_of(env, argv[3], &plain, &plain_len) || bytes_of(env, argv[4], &out, &out_len))
		return fail(env, "seal: key, nonce, aad, plain and out must be Uint8Arrays");
	if (napi_get_value_int64(env, argv[5], &at) != napi_ok)
		return fail(env, "seal: at must be a number");
	if (key_len != KEY_BYTES || nonce_len != NONCE_BYTES)
		return fail(env, "seal: the key must be 32 bytes and the nonce 12");
	if (plain_len > INT_MAX || aad_len > INT_MAX || at < 0 || (uint64_t)at > out_len || out_len - (size_t)at < plain_len + TAG_BYTES)
		return fail(env, "seal: out has no room for the ciphertext and tag at that offset");

	struct sealer *s;
	if (napi_get_instance_data(env, (void **)&s) != napi_ok || !s)
		return fail(env, "seal: the addon was not initialized");
	int fresh_key = !s->keyed || memcmp(s->key, key, KEY_BYTES) != 0;
	int n;
	unsigned char *c = out + at;
	if (!EVP_EncryptInit_ex(s->ctx, NULL, NULL, fresh_key ? key : NULL, nonce) ||
	    (aad_len > 0 && !EVP_EncryptUpdate(s->ctx, NULL, &n, aad, (int)aad_len)) ||
	    !EVP_EncryptUpdate(s->ctx, c, &n, plain, (int)plain_len) ||
	    !EVP_EncryptFinal_ex(s->ctx, c + n, &n) ||
	    !EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, c + plain_len)) {
		s->keyed = 0;
		return fail(env, "seal: OpenSSL failed to encrypt");
	}
	if (fresh_key) {
		memcpy(s->key, key, KEY_BYTES);
		s->keyed = 1;
	}
	return NULL;
}

NAPI_MODULE_INIT()
{
	struct sealer *s = calloc(1, sizeof(*s));
	if (!s || !(s->ctx = EVP_CIPHER_CTX_new()) || !EVP_EncryptInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)) {
		if (s)
			EVP_CIPHER_CTX_free(s->ctx);
		free(s);
		napi_throw_error(env, NULL, "record-seal: cannot set up AES-256-GCM");
		return NULL;
	}
	if (napi_set_instance_data(env, s, free_sealer, NULL) != napi_ok) {
		free_sealer(env, s, NULL);
		return NULL;
	}
	napi_value fn;
	if (napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal, NULL, &fn) != napi_ok ||
	    napi_set_named_property(env, exports, "seal", fn) != napi_ok)
		return NULL;
	return exports;
}
