/* PKCS#11 return codes: their names, and what each one means to dcmseal.
 * This table is the only place where a CKR_* code gets a meaning; wrap,
 * unwrap, rewrap, the retries of a session and hsm-check all ask it.
 * docs/HSM.md "Error classes" is the same table for people. */
#include "internal.h"

#define R(x, c) {x, #x, c}
static const struct {
    CK_RV rv;
    const char *name;
    p11_class cls;
} codes[] = {
    R(CKR_OK, P11_OK),

    /* The token does not do that: a mechanism, its parameters, an
     * attribute or template, a function. A capability answer about the
     * token, the same for every object. SoftHSM 2.6.1 refuses OAEP with
     * SHA-256 with CKR_ARGUMENTS_BAD; openCryptoki 3.8.1 refuses
     * CKA_EXTRACTABLE in an unwrap template with CKR_ATTRIBUTE_READ_ONLY. */
    R(CKR_MECHANISM_INVALID, P11_REFUSED),
    R(CKR_MECHANISM_PARAM_INVALID, P11_REFUSED),
    R(CKR_ARGUMENTS_BAD, P11_REFUSED),
    R(CKR_FUNCTION_NOT_SUPPORTED, P11_REFUSED),
    R(CKR_ATTRIBUTE_READ_ONLY, P11_REFUSED),
    R(CKR_ATTRIBUTE_SENSITIVE, P11_REFUSED),
    R(CKR_ATTRIBUTE_TYPE_INVALID, P11_REFUSED),
    R(CKR_ATTRIBUTE_VALUE_INVALID, P11_REFUSED),
    R(CKR_TEMPLATE_INCOMPLETE, P11_REFUSED),
    R(CKR_TEMPLATE_INCONSISTENT, P11_REFUSED),
    R(CKR_KEY_SIZE_RANGE, P11_REFUSED),
    R(CKR_KEY_NOT_WRAPPABLE, P11_REFUSED),
    R(CKR_KEY_UNEXTRACTABLE, P11_REFUSED),
    R(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, P11_REFUSED),
    R(CKR_WRAPPING_KEY_TYPE_INCONSISTENT, P11_REFUSED),
    R(CKR_ACTION_PROHIBITED, P11_REFUSED),
    R(CKR_DOMAIN_PARAMS_INVALID, P11_REFUSED),
    R(CKR_CURVE_NOT_SUPPORTED, P11_REFUSED),

    /* The key: gone (a handle that stays invalid after a fresh search),
     * switched off for this use (how `key disable` works), or of the wrong
     * type for the mechanism. */
    R(CKR_KEY_HANDLE_INVALID, P11_KEY),
    R(CKR_OBJECT_HANDLE_INVALID, P11_KEY),
    R(CKR_UNWRAPPING_KEY_HANDLE_INVALID, P11_KEY),
    R(CKR_WRAPPING_KEY_HANDLE_INVALID, P11_KEY),
    R(CKR_KEY_FUNCTION_NOT_PERMITTED, P11_KEY),
    R(CKR_KEY_TYPE_INCONSISTENT, P11_KEY),

    /* The bytes: a ciphertext or wrapped key that does not decode, or has
     * the wrong length. */
    R(CKR_ENCRYPTED_DATA_INVALID, P11_BAD_DATA),
    R(CKR_ENCRYPTED_DATA_LEN_RANGE, P11_BAD_DATA),
    R(CKR_WRAPPED_KEY_INVALID, P11_BAD_DATA),
    R(CKR_WRAPPED_KEY_LEN_RANGE, P11_BAD_DATA),
    R(CKR_DATA_INVALID, P11_BAD_DATA),
    R(CKR_DATA_LEN_RANGE, P11_BAD_DATA),
    /* An origin proof that does not verify (C_Verify, origin.c). */
    R(CKR_SIGNATURE_INVALID, P11_BAD_DATA),
    R(CKR_SIGNATURE_LEN_RANGE, P11_BAD_DATA),

    /* Gone for a moment: a dropped session or login, a busy or briefly
     * absent device. Retried (token.c). CKR_OPERATION_ACTIVE: a failure
     * left an operation open, which only a fresh session ends. */
    R(CKR_SESSION_HANDLE_INVALID, P11_TRANSIENT),
    R(CKR_SESSION_CLOSED, P11_TRANSIENT),
    R(CKR_USER_NOT_LOGGED_IN, P11_TRANSIENT),
    R(CKR_DEVICE_REMOVED, P11_TRANSIENT),
    R(CKR_OPERATION_ACTIVE, P11_TRANSIENT),
    R(CKR_DEVICE_ERROR, P11_TRANSIENT),
    R(CKR_DEVICE_MEMORY, P11_TRANSIENT),
    R(CKR_FUNCTION_FAILED, P11_TRANSIENT),
    R(CKR_TOKEN_NOT_PRESENT, P11_TRANSIENT),

    /* Everything else, and any code not listed: the token cannot serve
     * dcmseal now. CKR_GENERAL_ERROR and CKR_FUNCTION_FAILED are also
     * tokens' answers to a ciphertext whose OAEP decoding fails
     * (ckr_class_decrypt). */
    R(CKR_GENERAL_ERROR, P11_UNAVAILABLE),
    R(CKR_CANCEL, P11_UNAVAILABLE),
    R(CKR_HOST_MEMORY, P11_UNAVAILABLE),
    R(CKR_SLOT_ID_INVALID, P11_UNAVAILABLE),
    R(CKR_FUNCTION_CANCELED, P11_UNAVAILABLE),
    R(CKR_FUNCTION_REJECTED, P11_UNAVAILABLE),
    R(CKR_OPERATION_NOT_INITIALIZED, P11_UNAVAILABLE),
    R(CKR_BUFFER_TOO_SMALL, P11_UNAVAILABLE),
    R(CKR_PIN_INCORRECT, P11_UNAVAILABLE),
    R(CKR_PIN_INVALID, P11_UNAVAILABLE),
    R(CKR_PIN_LEN_RANGE, P11_UNAVAILABLE),
    R(CKR_PIN_EXPIRED, P11_UNAVAILABLE),
    R(CKR_PIN_LOCKED, P11_UNAVAILABLE),
    R(CKR_SESSION_COUNT, P11_UNAVAILABLE),
    R(CKR_SESSION_READ_ONLY, P11_UNAVAILABLE),
    R(CKR_TOKEN_NOT_RECOGNIZED, P11_UNAVAILABLE),
    R(CKR_TOKEN_WRITE_PROTECTED, P11_UNAVAILABLE),
    R(CKR_USER_ALREADY_LOGGED_IN, P11_UNAVAILABLE),
    R(CKR_USER_PIN_NOT_INITIALIZED, P11_UNAVAILABLE),
    R(CKR_USER_TYPE_INVALID, P11_UNAVAILABLE),
    R(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, P11_UNAVAILABLE),
    R(CKR_CRYPTOKI_NOT_INITIALIZED, P11_UNAVAILABLE),
    R(CKR_CRYPTOKI_ALREADY_INITIALIZED, P11_UNAVAILABLE),
};
#undef R

static size_t find(CK_RV rv)
{
    size_t i = 0;
    while (i < sizeof codes / sizeof codes[0] && codes[i].rv != rv)
        i++;
    return i;
}

const char *ckr_name(CK_RV rv)
{
    size_t i = find(rv);
    if (i < sizeof codes / sizeof codes[0])
        return codes[i].name;
    return rv >= CKR_VENDOR_DEFINED ? "CKR_VENDOR_DEFINED" : "CKR_(unknown)";
}

p11_class ckr_class(CK_RV rv)
{
    size_t i = find(rv);
    return i < sizeof codes / sizeof codes[0] ? codes[i].cls : P11_UNAVAILABLE;
}

int ckr_catch_all(CK_RV rv)
{
    return rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED;
}

/* C_Decrypt of an OAEP ciphertext that does not decode: SoftHSM 2.6.1 says
 * CKR_GENERAL_ERROR, openCryptoki 3.8.1 CKR_FUNCTION_FAILED. Read so only
 * where the token had accepted key and mechanism and then failed on the
 * bytes, and (CKR_FUNCTION_FAILED being transient) only after the retries
 * got the same answer on a fresh session. */
p11_class ckr_class_decrypt(CK_RV rv)
{
    return ckr_catch_all(rv) ? P11_BAD_DATA : ckr_class(rv);
}

int ckr_mechanism_refused(CK_RV rv)
{
    return rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID ||
           rv == CKR_ARGUMENTS_BAD;
}

dcmseal_status p11_status(p11_class c, int decrypting)
{
    switch (c) {
    case P11_OK: return DCMSEAL_OK;
    /* The token will not use this key this way: for this key, not the
     * whole token, so a batch goes on with the next object. */
    case P11_REFUSED:
    case P11_KEY: return DCMSEAL_E_KEY;
    /* Every authentication failure looks the same (FORMAT.md); data too
     * long to wrap is the caller's. */
    case P11_BAD_DATA: return decrypting ? DCMSEAL_E_AUTH : DCMSEAL_E_USAGE;
    case P11_TRANSIENT:
    case P11_UNAVAILABLE: break;
    }
    return DCMSEAL_E_TOKEN;
}
