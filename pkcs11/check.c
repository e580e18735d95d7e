/* The token check: what a token can and cannot do for dcmseal, probed with
 * a scratch KEK generated exactly as `key create` generates one. Every
 * probe calls the module directly and records the token's first answer:
 * a check that hid a refusal behind a retry or a fallback would tell the
 * operator nothing. docs/HSM.md explains each result. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "internal.h"

#define CHECK_MAX 24
#define SCRATCH_PREFIX_MAX 40
#define SESSIONS_LIMIT 1024
#define TEST_DEK_LEN 32
/* A private key's DER, for the wrap attempts: RSA-3072 needs about 1.8 KiB. */
#define PRIVATE_WRAP_MAX 4096

struct dcmseal_check {
    dcmseal_check_result r[CHECK_MAX];
    size_t n;
};

/* One scratch key version. */
struct pair {
    uint32_t version;
    CK_ULONG bits;
    CK_OBJECT_HANDLE pub, priv;
    int ok; /* generated and within dcmseal's key policy */
};

/* The state the probes share. */
struct probe {
    dcmseal_session_t *s;
    CK_FUNCTION_LIST *m;
    dcmseal_check_t *c;
    char name[DCMSEAL_KEK_NAME_MAX + 1];
    struct pair pair[2];    /* v1 RSA-2048, v2 RSA-3072 */
    struct pair *key;       /* the pair the later probes use, NULL when none */
    struct pair *target;    /* the rewrap target: the other pair, else |key| */
    CK_RSA_PKCS_OAEP_PARAMS oaep; /* the variant dcmseal will use */
    dcmseal_oaep variant;         /* the same, as dcmseal names it */
    int have_oaep;
    /* A random test key, wrapped under |key| with |oaep|. */
    uint8_t dek[TEST_DEK_LEN];
    uint8_t wrapped[DCMSEAL_WRAPPED_MAX];
    CK_ULONG wrapped_len;
};

/* Records a result; returns it, or NULL when there is no room (a bug). */
static DCMSEAL_PRINTF(6, 7) dcmseal_check_result *add(struct probe *p, const char *id,
                                                      int required, dcmseal_check_verdict v,
                                                      const char *ckr, const char *fmt, ...)
{
    dcmseal_check_result *r;
    va_list ap;
    if (p->c->n == CHECK_MAX)
        return NULL;
    r = &p->c->r[p->c->n++];
    r->id = id;
    r->required = required;
    r->verdict = v;
    r->ckr = ckr;
    r->count = -1;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    return r;
}

/* A probe that cannot run because an earlier one failed. */
static void not_run(struct probe *p, const char *id, int required, dcmseal_check_verdict v,
                    const char *why)
{
    add(p, id, required, v, "-", "not run: %s", why);
}

static dcmseal_check_verdict pass_if(int ok)
{
    return ok ? DCMSEAL_CHECK_PASS : DCMSEAL_CHECK_FAIL;
}

static int trimmed(const unsigned char *s, int len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\0'))
        len--;
    return len;
}

static void oaep_set(CK_RSA_PKCS_OAEP_PARAMS *o, CK_MECHANISM_TYPE hash, CK_RSA_PKCS_MGF_TYPE mgf)
{
    memset(o, 0, sizeof *o);
    o->hashAlg = hash;
    o->mgf = mgf;
    o->source = CKZ_DATA_SPECIFIED;
}

/* ---- the token and its mechanisms --------------------------------------- */

static void probe_token(struct probe *p)
{
    CK_TOKEN_INFO ti;
    CK_RV rv = p->m->C_GetTokenInfo(p->s->tok->slot, &ti);
    char max[32] = "no limit";
    if (rv != CKR_OK) {
        add(p, "token", 0, DCMSEAL_CHECK_INFO, ckr_name(rv), "C_GetTokenInfo failed");
        return;
    }
    /* openCryptoki 3.8.1 claims 2^64 - 2: no limit either. */
    if (ti.ulMaxRwSessionCount != CK_EFFECTIVELY_INFINITE &&
        ti.ulMaxRwSessionCount < CK_UNAVAILABLE_INFORMATION - 1)
        snprintf(max, sizeof max, "%lu", (unsigned long)ti.ulMaxRwSessionCount);
    add(p, "token", 0, DCMSEAL_CHECK_INFO, ckr_name(rv),
        "'%s': %.*s %.*s, firmware %u.%u, serial %.*s; read-write sessions claimed: %s%s",
        p->s->tok->label, trimmed(ti.manufacturerID, 32), ti.manufacturerID,
        trimmed(ti.model, 16), ti.model, ti.firmwareVersion.major, ti.firmwareVersion.minor,
        trimmed(ti.serialNumber, 16), ti.serialNumber, max,
        p->s->tok->serialized ? "; one call at a time (openCryptoki before 3.14 has no object "
                                "locks: docs/HSM.md)"
                              : "");
}

/* "encrypt decrypt wrap unwrap, 512..16384 bits" */
static void mech_describe(char *out, size_t cap, const CK_MECHANISM_INFO *mi)
{
    snprintf(out, cap, "%s%s%s%s%s%lu..%lu bits", mi->flags & CKF_ENCRYPT ? "encrypt " : "",
             mi->flags & CKF_DECRYPT ? "decrypt " : "", mi->flags & CKF_WRAP ? "wrap " : "",
             mi->flags & CKF_UNWRAP ? "unwrap " : "",
             mi->flags & CKF_GENERATE_KEY_PAIR ? "generate " : "",
             (unsigned long)mi->ulMinKeySize, (unsigned long)mi->ulMaxKeySize);
}

static void probe_mechanisms(struct probe *p)
{
    CK_MECHANISM_INFO oaep, gen;
    char a[96] = "", b[96] = "";
    CK_RV rv = p->m->C_GetMechanismInfo(p->s->tok->slot, CKM_RSA_PKCS_OAEP, &oaep);
    CK_RV rv2 = p->m->C_GetMechanismInfo(p->s->tok->slot, CKM_RSA_PKCS_KEY_PAIR_GEN, &gen);
    if (rv == CKR_OK)
        mech_describe(a, sizeof a, &oaep);
    if (rv2 == CKR_OK)
        mech_describe(b, sizeof b, &gen);
    add(p, "mechanisms", 0, DCMSEAL_CHECK_INFO, ckr_name(rv != CKR_OK ? rv : rv2),
        "CKM_RSA_PKCS_OAEP: %s; CKM_RSA_PKCS_KEY_PAIR_GEN: %s", rv == CKR_OK ? a : ckr_name(rv),
        rv2 == CKR_OK ? b : ckr_name(rv2));
}

/* ---- key generation ----------------------------------------------------- */

static void probe_keygen(struct probe *p, struct pair *k, const char *id)
{
    dcmseal_kek_info info;
    dcmseal_error err;
    CK_BBOOL always = CK_TRUE, never = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_ALWAYS_SENSITIVE, &always, 1},
        {CKA_NEVER_EXTRACTABLE, &never, 1},
    };
    CK_RV rv = kek_generate_pair(p->s, p->name, k->version, k->bits, &k->pub, &k->priv);
    if (rv != CKR_OK) {
        k->pub = k->priv = CK_INVALID_HANDLE;
        add(p, id, 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "C_GenerateKeyPair of RSA-%lu with dcmseal's template refused",
            (unsigned long)k->bits);
        return;
    }
    /* What the token reports back is what counts: a token may ignore a
     * template attribute without saying so. */
    if (dcmseal_kek_find(p->s, &info, p->name, k->version, &err) != DCMSEAL_OK) {
        add(p, id, 1, DCMSEAL_CHECK_FAIL, ckr_name(rv), "generated, but %s", err.message);
        return;
    }
    if (info.bits != k->bits) {
        add(p, id, 1, DCMSEAL_CHECK_FAIL, ckr_name(rv), "asked for RSA-%lu, got RSA-%u",
            (unsigned long)k->bits, info.bits);
        return;
    }
    /* Unavailable is allowed (not every token keeps them); false is not:
     * it would mean that the key was once readable. */
    rv = p->m->C_GetAttributeValue(p->s->h, k->priv, t, 2);
    if (rv == CKR_OK && (always == CK_FALSE || never == CK_FALSE)) {
        add(p, id, 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "generated, but the token reports CKA_ALWAYS_SENSITIVE=%s, CKA_NEVER_EXTRACTABLE=%s",
            always ? "true" : "false", never ? "true" : "false");
        return;
    }
    k->ok = 1;
    add(p, id, 1, DCMSEAL_CHECK_PASS, "CKR_OK",
        "RSA-%lu token key pair as `key create` makes it; read back: private half "
        "sensitive, not extractable, decrypt+unwrap; public half encrypt+wrap%s",
        (unsigned long)k->bits,
        rv == CKR_OK ? "; always sensitive, never extractable" : "");
}

/* ---- RSA-OAEP ----------------------------------------------------------- */

/* Encrypts a fresh random key with |k|'s public half and decrypts it in the
 * token. Returns the first refusal; CKR_OK with *same = 0 when the bytes
 * came back different. Leaves the ciphertext in |p->wrapped|. */
static CK_RV roundtrip(struct probe *p, const struct pair *k, CK_RSA_PKCS_OAEP_PARAMS *o,
                       const char **stage, int *same)
{
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, o, sizeof *o};
    uint8_t back[DCMSEAL_WRAPPED_MAX];
    CK_ULONG back_len = sizeof back;
    CK_RV rv;
    *same = 0;
    if (RAND_bytes(p->dek, sizeof p->dek) != 1)
        return CKR_FUNCTION_FAILED;
    p->wrapped_len = sizeof p->wrapped;
    *stage = "C_EncryptInit";
    if ((rv = p->m->C_EncryptInit(p->s->h, &mech, k->pub)) != CKR_OK)
        return rv;
    *stage = "C_Encrypt";
    if ((rv = p->m->C_Encrypt(p->s->h, p->dek, sizeof p->dek, p->wrapped, &p->wrapped_len)) !=
        CKR_OK)
        return rv;
    *stage = "C_DecryptInit";
    if ((rv = p->m->C_DecryptInit(p->s->h, &mech, k->priv)) != CKR_OK)
        return rv;
    *stage = "C_Decrypt";
    rv = p->m->C_Decrypt(p->s->h, p->wrapped, p->wrapped_len, back, &back_len);
    *same = rv == CKR_OK && back_len == sizeof p->dek &&
            CRYPTO_memcmp(back, p->dek, sizeof p->dek) == 0;
    OPENSSL_cleanse(back, sizeof back);
    return rv;
}

static const struct oaep_variant {
    const char *id, *what;
    CK_MECHANISM_TYPE hash;
    CK_RSA_PKCS_MGF_TYPE mgf;
} variants[] = {
    {"oaep-sha1", "SHA-1/MGF1-SHA1", CKM_SHA_1, CKG_MGF1_SHA1},
    {"oaep-sha256", "SHA-256/MGF1-SHA256", CKM_SHA256, CKG_MGF1_SHA256},
    {"oaep-sha256-mgf1-sha1", "SHA-256/MGF1-SHA1", CKM_SHA256, CKG_MGF1_SHA1},
};

static void probe_oaep(struct probe *p)
{
    CK_RV rv[3];
    int works[3] = {0, 0, 0};
    if (p->key == NULL) {
        not_run(p, variants[0].id, 0, DCMSEAL_CHECK_FAIL, "no key pair was generated");
        not_run(p, variants[1].id, 0, DCMSEAL_CHECK_FAIL, "no key pair was generated");
        not_run(p, variants[2].id, 0, DCMSEAL_CHECK_INFO, "no key pair was generated");
        not_run(p, "oaep", 1, DCMSEAL_CHECK_FAIL, "no key pair was generated");
        return;
    }
    for (size_t i = 0; i < 3; i++) {
        const struct oaep_variant *v = &variants[i];
        CK_RSA_PKCS_OAEP_PARAMS o;
        const char *stage = "";
        int same = 0;
        oaep_set(&o, v->hash, v->mgf);
        rv[i] = roundtrip(p, p->key, &o, &stage, &same);
        works[i] = rv[i] == CKR_OK && same;
        /* The mixed variant is no dcmseal mechanism: only a fact. */
        dcmseal_check_verdict verdict = i == 2 ? DCMSEAL_CHECK_INFO : pass_if(works[i]);
        if (works[i])
            add(p, v->id, 0, verdict, ckr_name(rv[i]),
                "RSA-OAEP %s: encrypted with the public half, decrypted in the token (RSA-%lu)",
                v->what, (unsigned long)p->key->bits);
        else if (rv[i] == CKR_OK)
            add(p, v->id, 0, verdict, ckr_name(rv[i]),
                "RSA-OAEP %s: the token decrypted other bytes than it encrypted", v->what);
        else
            add(p, v->id, 0, verdict, ckr_name(rv[i]), "RSA-OAEP %s: %s refused it%s", v->what,
                stage, i == 2 ? " (information only: dcmseal never uses it)" : "");
    }
    /* dcmseal's AUTO preference: SHA-256, else SHA-1, recorded per file. */
    const size_t pick = works[1] ? 1 : 0;
    if (!works[0] && !works[1]) {
        add(p, "oaep", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv[0]),
            "neither RSA-OAEP SHA-256 nor SHA-1 works: dcmseal cannot wrap keys here");
        return;
    }
    oaep_set(&p->oaep, variants[pick].hash, variants[pick].mgf);
    p->variant = pick == 1 ? DCMSEAL_OAEP_SHA256 : DCMSEAL_OAEP_SHA1;
    p->have_oaep = 1;
    if (pick == 1)
        add(p, "oaep", 1, DCMSEAL_CHECK_PASS, ckr_name(rv[1]),
            "dcmseal wraps with RSA-OAEP SHA-256/MGF1-SHA256");
    else
        add(p, "oaep", 1, DCMSEAL_CHECK_PASS, ckr_name(rv[0]),
            "dcmseal falls back to RSA-OAEP SHA-1/MGF1-SHA1 (SHA-256: %s) and records it in "
            "each object; `--oaep sha256` would be refused",
            ckr_name(rv[1]));
}

/* A fresh test key under |p->key| with the variant dcmseal uses. */
static CK_RV fresh_wrapped(struct probe *p)
{
    const char *stage;
    int same;
    CK_RV rv = roundtrip(p, p->key, &p->oaep, &stage, &same);
    return rv == CKR_OK && !same ? CKR_GENERAL_ERROR : rv;
}

/* Whether probe |id| can start: it needs a working variant and a fresh
 * test key under it; when not, records why. */
static int ready(struct probe *p, const char *id, int required)
{
    CK_RV rv;
    if (!p->have_oaep) {
        not_run(p, id, required, DCMSEAL_CHECK_FAIL, "no working RSA-OAEP variant");
        return 0;
    }
    if ((rv = fresh_wrapped(p)) != CKR_OK) {
        add(p, id, required, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "could not wrap a test key to start from");
        return 0;
    }
    return 1;
}

/* Decrypts |in| with |priv| and says whether it is |p->dek|. */
static CK_RV decrypts_to_dek(struct probe *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv,
                             const uint8_t *in, CK_ULONG in_len, int *same)
{
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &p->oaep, sizeof p->oaep};
    uint8_t back[DCMSEAL_WRAPPED_MAX];
    CK_ULONG back_len = sizeof back;
    CK_RV rv = p->m->C_DecryptInit(h, &mech, priv);
    if (rv == CKR_OK)
        rv = p->m->C_Decrypt(h, (CK_BYTE *)in, in_len, back, &back_len);
    *same = rv == CKR_OK && back_len == sizeof p->dek &&
            CRYPTO_memcmp(back, p->dek, sizeof p->dek) == 0;
    OPENSSL_cleanse(back, sizeof back);
    return rv;
}

/* ---- rewrap in the token ------------------------------------------------ */

/* The in-token path failed at |call| with |rv|: what `rewrap` does then,
 * by the rule it follows (kek_rewrap_fallback). A fallback makes the check
 * optional; an answer that would stop every rewrap makes it required. */
static void rewrap_failed(struct probe *p, const char *call, CK_RV rv)
{
    if (kek_rewrap_fallback(rv, p->variant) != REWRAP_FALLBACK_NONE)
        add(p, "rewrap-in-token", 0, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "%s refused (optional: `rewrap` moves each data key through host memory "
            "instead and wipes it at once)",
            call);
    else
        add(p, "rewrap-in-token", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "%s failed: `rewrap` would stop here on this token", call);
}

static void probe_rewrap(struct probe *p)
{
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &p->oaep, sizeof p->oaep};
    CK_OBJECT_HANDLE dek = CK_INVALID_HANDLE;
    uint8_t out[DCMSEAL_WRAPPED_MAX];
    CK_ULONG out_len = sizeof out;
    CK_RV rv, rv_value = CKR_OK;
    int same = 0;
    if (!ready(p, "rewrap-in-token", 0))
        return;
    rv = kek_unwrap_dek(p->s, &mech, p->key->priv, p->wrapped, p->wrapped_len, &dek);
    if (rv != CKR_OK) {
        dek = CK_INVALID_HANDLE;
        rewrap_failed(p, "C_UnwrapKey into a sensitive session key", rv);
        goto out;
    }
    /* Sensitive was asked for: the unwrapped key must not be readable. */
    if (kek_dek_readable(p->s, dek, &rv_value)) {
        add(p, "rewrap-in-token", 0, DCMSEAL_CHECK_FAIL, ckr_name(rv_value),
            "the key unwrapped as sensitive is readable (CKA_VALUE) (optional: `rewrap` "
            "moves each data key through host memory instead and wipes it at once)");
        goto out;
    }
    rv = p->m->C_WrapKey(p->s->h, &mech, p->target->pub, dek, out, &out_len);
    if (rv != CKR_OK) {
        rewrap_failed(p, "C_WrapKey of the unwrapped key", rv);
        goto out;
    }
    rv = decrypts_to_dek(p, p->s->h, p->target->priv, out, out_len, &same);
    if (rv != CKR_OK || !same)
        add(p, "rewrap-in-token", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "the rewrapped key does not decrypt to the original under the target key");
    else
        add(p, "rewrap-in-token", 0, DCMSEAL_CHECK_PASS, ckr_name(rv),
            "C_UnwrapKey into a sensitive session key (CKA_VALUE: %s), C_WrapKey under "
            "RSA-%lu: the key never left the token",
            ckr_name(rv_value), (unsigned long)p->target->bits);
out:
    if (dek != CK_INVALID_HANDLE)
        p->m->C_DestroyObject(p->s->h, dek);
}

/* ---- a disabled key ----------------------------------------------------- */

static void probe_disabled(struct probe *p)
{
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &p->oaep, sizeof p->oaep};
    CK_OBJECT_HANDLE dek = CK_INVALID_HANDLE;
    uint8_t back[DCMSEAL_WRAPPED_MAX];
    CK_ULONG back_len = sizeof back, junk_len = sizeof back;
    CK_RV rv, dec, unw, enc;
    int same = 0;
    if (!ready(p, "disabled-refused", 1))
        return;
    if ((rv = kek_set_uses(p->s, p->key->priv, p->key->pub, CK_FALSE)) != CKR_OK) {
        add(p, "disabled-refused", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "C_SetAttributeValue refused to disable the key as `key disable` does");
        kek_set_uses(p->s, p->key->priv, p->key->pub, CK_TRUE);
        return;
    }
    /* Each probe runs to the end so that no operation stays active. */
    if ((dec = p->m->C_DecryptInit(p->s->h, &mech, p->key->priv)) == CKR_OK)
        dec = p->m->C_Decrypt(p->s->h, p->wrapped, p->wrapped_len, back, &back_len);
    OPENSSL_cleanse(back, sizeof back);
    if ((unw = kek_unwrap_dek(p->s, &mech, p->key->priv, p->wrapped, p->wrapped_len, &dek)) ==
        CKR_OK)
        p->m->C_DestroyObject(p->s->h, dek);
    if ((enc = p->m->C_EncryptInit(p->s->h, &mech, p->key->pub)) == CKR_OK)
        enc = p->m->C_Encrypt(p->s->h, p->dek, sizeof p->dek, back, &junk_len);
    rv = kek_set_uses(p->s, p->key->priv, p->key->pub, CK_TRUE);
    if (rv == CKR_OK)
        rv = decrypts_to_dek(p, p->s->h, p->key->priv, p->wrapped, p->wrapped_len, &same);
    if (dec == CKR_OK || unw == CKR_OK)
        add(p, "disabled-refused", 1, DCMSEAL_CHECK_FAIL, ckr_name(dec == CKR_OK ? dec : unw),
            "the token still %s with a disabled key (CKA_DECRYPT/CKA_UNWRAP false)",
            dec == CKR_OK ? "decrypts" : "unwraps");
    else if (rv != CKR_OK || !same)
        add(p, "disabled-refused", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "refused while disabled, but does not decrypt again once enabled");
    else
        add(p, "disabled-refused", 1, DCMSEAL_CHECK_PASS, ckr_name(dec),
            "disabled as `key disable` does: decrypt %s, unwrap %s, encrypt %s; enabled "
            "again, it decrypts",
            ckr_name(dec), ckr_name(unw), ckr_name(enc));
}

/* ---- the private half stays in the token -------------------------------- */

static int refused(CK_RV rv)
{
    /* CKR_BUFFER_TOO_SMALL means the token was willing. */
    return rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL;
}

static void probe_not_readable(struct probe *p)
{
    static const struct {
        CK_ATTRIBUTE_TYPE type;
        const char *name;
    } secret[] = {
        {CKA_PRIVATE_EXPONENT, "CKA_PRIVATE_EXPONENT"},
        {CKA_PRIME_1, "CKA_PRIME_1"},
        {CKA_VALUE, "CKA_VALUE"},
    };
    uint8_t buf[1024];
    char detail[240] = "C_GetAttributeValue";
    size_t used = strlen(detail);
    CK_RV first = CKR_OK;
    int leaked = 0;
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++) {
        CK_ATTRIBUTE t[] = {{secret[i].type, buf, sizeof buf}};
        CK_RV rv = p->m->C_GetAttributeValue(p->s->h, p->key->priv, t, 1);
        int got = rv == CKR_OK && t[0].ulValueLen != CK_UNAVAILABLE_INFORMATION;
        leaked |= got;
        if (i == 0)
            first = rv;
        used += (size_t)snprintf(detail + used, sizeof detail - used, "%s %s: %s",
                                 i ? "," : "", secret[i].name, got ? "READ" : ckr_name(rv));
        if (used >= sizeof detail)
            used = sizeof detail - 1;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    add(p, "private-not-readable", 1, pass_if(!leaked), ckr_name(first), "%s%s", detail,
        leaked ? " -- the private key can be read out" : "");
}

/* Tries to wrap the private half out of the token: under a fresh AES key
 * (AES key wrap with padding, and AES-CBC with padding) and, when the token
 * makes no AES keys, under the scratch RSA public key. */
static void probe_not_wrappable(struct probe *p)
{
    static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    static const CK_KEY_TYPE type = CKK_AES;
    static const CK_ULONG len32 = 32;
    static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE aes_t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls}, {CKA_KEY_TYPE, (void *)&type, sizeof type},
        {CKA_VALUE_LEN, (void *)&len32, sizeof len32}, {CKA_TOKEN, (void *)&no, 1},
        {CKA_WRAP, (void *)&yes, 1}, {CKA_SENSITIVE, (void *)&yes, 1},
        {CKA_EXTRACTABLE, (void *)&no, 1},
    };
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    uint8_t iv[16] = {0};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0}, cbc = {CKM_AES_CBC_PAD, iv, sizeof iv};
    CK_RSA_PKCS_OAEP_PARAMS sha1;
    CK_MECHANISM rsa = {CKM_RSA_PKCS_OAEP, &sha1, sizeof sha1};
    CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE;
    uint8_t *out = OPENSSL_malloc(PRIVATE_WRAP_MAX);
    CK_ULONG out_len;
    CK_RV rv_gen, rv1, rv2 = CKR_OK;
    if (out == NULL) {
        not_run(p, "private-not-wrappable", 1, DCMSEAL_CHECK_FAIL, "out of memory");
        return;
    }
    rv_gen = p->m->C_GenerateKey(p->s->h, &gen, aes_t, sizeof aes_t / sizeof aes_t[0], &aes);
    if (rv_gen == CKR_OK) {
        out_len = PRIVATE_WRAP_MAX;
        rv1 = p->m->C_WrapKey(p->s->h, &kwp, aes, p->key->priv, out, &out_len);
        out_len = PRIVATE_WRAP_MAX;
        rv2 = p->m->C_WrapKey(p->s->h, &cbc, aes, p->key->priv, out, &out_len);
        p->m->C_DestroyObject(p->s->h, aes);
        add(p, "private-not-wrappable", 1, pass_if(refused(rv1) && refused(rv2)), ckr_name(rv1),
            "C_WrapKey of the private half under an AES key: CKM_AES_KEY_WRAP_PAD %s, "
            "CKM_AES_CBC_PAD %s%s",
            ckr_name(rv1), ckr_name(rv2),
            refused(rv1) && refused(rv2) ? "" : " -- the private key can leave the token");
    } else {
        oaep_set(&sha1, CKM_SHA_1, CKG_MGF1_SHA1);
        out_len = PRIVATE_WRAP_MAX;
        rv1 = p->m->C_WrapKey(p->s->h, &rsa, p->key->pub, p->key->priv, out, &out_len);
        add(p, "private-not-wrappable", 1, pass_if(refused(rv1)), ckr_name(rv1),
            "no AES key to wrap with (CKM_AES_KEY_GEN: %s); C_WrapKey under the RSA public "
            "half: %s%s",
            ckr_name(rv_gen), ckr_name(rv1),
            refused(rv1) ? "" : " -- the private key can leave the token");
    }
    OPENSSL_clear_free(out, PRIVATE_WRAP_MAX);
}

/* PKCS#11 lets CKA_EXTRACTABLE only become false and CKA_SENSITIVE only
 * become true; a token that allows the reverse would let anyone holding the
 * PIN export the key later. */
static void probe_locked(struct probe *p)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE ext[] = {{CKA_EXTRACTABLE, &yes, 1}};
    CK_ATTRIBUTE sens[] = {{CKA_SENSITIVE, &no, 1}};
    CK_RV rv1 = p->m->C_SetAttributeValue(p->s->h, p->key->priv, ext, 1);
    CK_RV rv2 = p->m->C_SetAttributeValue(p->s->h, p->key->priv, sens, 1);
    add(p, "private-attributes-locked", 1, pass_if(rv1 != CKR_OK && rv2 != CKR_OK),
        ckr_name(rv1), "C_SetAttributeValue of the private half: CKA_EXTRACTABLE=true %s, "
                       "CKA_SENSITIVE=false %s%s",
        ckr_name(rv1), ckr_name(rv2),
        rv1 != CKR_OK && rv2 != CKR_OK ? "" : " -- the key can be made exportable");
}

static void probe_private(struct probe *p)
{
    if (p->key == NULL) {
        not_run(p, "private-not-readable", 1, DCMSEAL_CHECK_FAIL, "no key pair was generated");
        not_run(p, "private-not-wrappable", 1, DCMSEAL_CHECK_FAIL, "no key pair was generated");
        not_run(p, "private-attributes-locked", 1, DCMSEAL_CHECK_FAIL,
                "no key pair was generated");
        return;
    }
    probe_not_readable(p);
    probe_not_wrappable(p);
    probe_locked(p);
}

/* ---- a key that only does what it is for -------------------------------- */

/* Starts |init| with |mech| on the private half and, when the token accepts,
 * runs the operation on junk so that it ends. */
static CK_RV try_private(struct probe *p, CK_MECHANISM_TYPE type, int sign)
{
    CK_MECHANISM mech = {type, NULL, 0};
    uint8_t junk[DCMSEAL_WRAPPED_MAX] = {0}, out[DCMSEAL_WRAPPED_MAX];
    CK_ULONG out_len = sizeof out, n = p->key->bits / 8;
    CK_RV rv = sign ? p->m->C_SignInit(p->s->h, &mech, p->key->priv)
                    : p->m->C_DecryptInit(p->s->h, &mech, p->key->priv);
    if (rv == CKR_OK && sign)
        p->m->C_Sign(p->s->h, junk, 16, out, &out_len);
    else if (rv == CKR_OK)
        p->m->C_Decrypt(p->s->h, junk, n, out, &out_len);
    OPENSSL_cleanse(out, sizeof out);
    return rv;
}

/* What the template asks beyond the policy: RSA-OAEP only on the private
 * half, a public half no one changes without the PIN, unwrapped keys of
 * exactly a DEK's length. None is required: dcmseal works without them,
 * and `key list` flags the keys that lack them. */
static void probe_hardening(struct probe *p)
{
    CK_MECHANISM_TYPE mechs[8];
    CK_BBOOL priv_pub = BOOL_UNSET, modifiable = BOOL_UNSET, off = CK_FALSE, on = CK_TRUE;
    CK_ATTRIBUTE mt[] = {{CKA_ALLOWED_MECHANISMS, mechs, sizeof mechs}};
    CK_ATTRIBUTE pt[] = {{CKA_PRIVATE, &priv_pub, 1}, {CKA_MODIFIABLE, &modifiable, 1}};
    CK_ATTRIBUTE no_wrap[] = {{CKA_WRAP, &off, 1}}, wrap[] = {{CKA_WRAP, &on, 1}};
    if (p->key == NULL) {
        not_run(p, "allowed-mechanisms", 0, DCMSEAL_CHECK_FAIL, "no key pair was generated");
        not_run(p, "public-half-locked", 0, DCMSEAL_CHECK_FAIL, "no key pair was generated");
        not_run(p, "unwrap-length", 0, DCMSEAL_CHECK_INFO, "no key pair was generated");
        return;
    }
    CK_RV rv = p11_read_attrs(p->s, p->key->priv, mt, 1);
    int set = rv == CKR_OK && mt[0].ulValueLen == sizeof mechs[0] &&
              mechs[0] == CKM_RSA_PKCS_OAEP;
    CK_RV pkcs1 = try_private(p, CKM_RSA_PKCS, 0), raw = try_private(p, CKM_RSA_X_509, 0);
    CK_RV sig = try_private(p, CKM_RSA_PKCS, 1);
    int enforced = pkcs1 != CKR_OK && raw != CKR_OK && sig != CKR_OK;
    add(p, "allowed-mechanisms", 0, pass_if(enforced), ckr_name(pkcs1),
        "CKA_ALLOWED_MECHANISMS RSA-OAEP %s; the private half answers C_DecryptInit "
        "with PKCS#1 v1.5 %s and with raw RSA %s, and C_SignInit %s%s",
        set ? "kept" : "not kept (the token refused it at generation or ignores it)",
        ckr_name(pkcs1), ckr_name(raw), ckr_name(sig),
        enforced ? "" : " -- the key can serve as a padding oracle or sign");

    rv = p11_read_attrs(p->s, p->key->pub, pt, 2);
    CK_RV change = p->m->C_SetAttributeValue(p->s->h, p->key->pub, no_wrap, 1);
    if (change == CKR_OK)
        p->m->C_SetAttributeValue(p->s->h, p->key->pub, wrap, 1);
    int locked = rv == CKR_OK && priv_pub == CK_TRUE && modifiable == CK_FALSE && change != CKR_OK;
    add(p, "public-half-locked", 0, pass_if(locked), ckr_name(change),
        "public half CKA_PRIVATE=%s, CKA_MODIFIABLE=%s; C_SetAttributeValue CKA_WRAP=false: "
        "%s%s",
        priv_pub == CK_TRUE ? "true" : priv_pub == CK_FALSE ? "false" : "unset",
        modifiable == CK_TRUE ? "true" : modifiable == CK_FALSE ? "false" : "unset",
        ckr_name(change),
        locked ? "" : " -- without the PIN it can be deleted or changed, and objects under it "
                      "then cannot be encrypted");

    /* How the unwrap dcmseal itself runs keeps a key of another length out:
     * a 16-byte key, wrapped as a DEK would be, must be refused. */
    int rewrapped = 0;
    for (size_t i = 0; i < p->c->n; i++)
        rewrapped |= strcmp(p->c->r[i].id, "rewrap-in-token") == 0 &&
                     p->c->r[i].verdict == DCMSEAL_CHECK_PASS;
    if (!rewrapped || !p->have_oaep) {
        not_run(p, "unwrap-length", 0, DCMSEAL_CHECK_FAIL, "no in-token rewrap");
        return;
    }
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &p->oaep, sizeof p->oaep};
    uint8_t short_key[16], wrapped[DCMSEAL_WRAPPED_MAX];
    CK_ULONG wrapped_len = sizeof wrapped;
    CK_OBJECT_HANDLE dek = CK_INVALID_HANDLE;
    if (RAND_bytes(short_key, sizeof short_key) != 1 ||
        (rv = p->m->C_EncryptInit(p->s->h, &mech, p->key->pub)) != CKR_OK ||
        (rv = p->m->C_Encrypt(p->s->h, short_key, sizeof short_key, wrapped, &wrapped_len)) !=
            CKR_OK) {
        add(p, "unwrap-length", 0, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "could not wrap a 16-byte key to try");
        return;
    }
    rv = kek_unwrap_dek(p->s, &mech, p->key->priv, wrapped, wrapped_len, &dek);
    if (rv == CKR_OK)
        p->m->C_DestroyObject(p->s->h, dek);
    const CK_RV refused = (CK_RV)atomic_load(&p->s->tok->no_unwrap_value_len);
    char how[160];
    if (refused != CKR_OK)
        snprintf(how, sizeof how,
                 "C_UnwrapKey refuses CKA_VALUE_LEN (%s), so dcmseal measures each unwrapped "
                 "key with CKM_AES_KEY_WRAP (to within 8 bytes)",
                 ckr_name(refused));
    else
        snprintf(how, sizeof how, "C_UnwrapKey takes CKA_VALUE_LEN 32");
    add(p, "unwrap-length", 0, pass_if(rv != CKR_OK), ckr_name(rv),
        "%s; a 16-byte key was %s", how,
        rv != CKR_OK ? "refused" : "unwrapped as a data key -- in-token rewrap cannot tell");
}

/* ---- the origin key ----------------------------------------------------- */

/* Finishes a sign operation the token should have refused to start. */
static void sign_finish(struct probe *p)
{
    uint8_t junk[64];
    CK_ULONG n = sizeof junk;
    p->m->C_Sign(p->s->h, (CK_BYTE *)"x", 1, junk, &n);
}

/* An origin key made exactly as `key create` makes one (origin.c), a proof
 * computed and checked in the token, a wrong one refused; then whether its
 * value stays in the token and it does nothing but HMAC-SHA256. */
static void probe_origin(struct probe *p)
{
    static const uint8_t msg[] = "dcmseal hsm-check: an origin proof";
    CK_MECHANISM mech = {CKM_SHA256_HMAC, NULL, 0}, sha1 = {CKM_SHA_1_HMAC, NULL, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    uint8_t mac[32], value[64];
    CK_ULONG len = sizeof mac;
    CK_MECHANISM_TYPE allowed[8];
    CK_ATTRIBUTE am = {CKA_ALLOWED_MECHANISMS, allowed, sizeof allowed};
    CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof value};
    CK_RV rv, good = CKR_OK, bad = CKR_OK;
    if ((rv = origin_generate(p->s, p->name, 1)) == CKR_OK &&
        (rv = hmac_key_find(p->s, p->name, 1, &h)) == CKR_OK && h == CK_INVALID_HANDLE)
        rv = CKR_GENERAL_ERROR;
    if (rv != CKR_OK) {
        add(p, "origin-hmac", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "C_GenerateKey of a 32-byte CKK_GENERIC_SECRET HMAC key (sensitive, not "
            "extractable, sign/verify) refused: no origin proofs on this token");
        not_run(p, "origin-mechanisms", 0, DCMSEAL_CHECK_INFO, "no origin key was generated");
        return;
    }
    if ((rv = p->m->C_SignInit(p->s->h, &mech, h)) == CKR_OK)
        rv = p->m->C_Sign(p->s->h, (CK_BYTE *)msg, sizeof msg, mac, &len);
    if (rv == CKR_OK && (good = p->m->C_VerifyInit(p->s->h, &mech, h)) == CKR_OK)
        good = p->m->C_Verify(p->s->h, (CK_BYTE *)msg, sizeof msg, mac, sizeof mac);
    mac[5] ^= 1;
    if (rv == CKR_OK && (bad = p->m->C_VerifyInit(p->s->h, &mech, h)) == CKR_OK)
        bad = p->m->C_Verify(p->s->h, (CK_BYTE *)msg, sizeof msg, mac, sizeof mac);
    CK_RV rd = p->m->C_GetAttributeValue(p->s->h, h, &v, 1);
    const int readable = rd == CKR_OK && v.ulValueLen != CK_UNAVAILABLE_INFORMATION;
    OPENSSL_cleanse(value, sizeof value);
    /* What dcmseal's policy asks on every use (origin.c, hmac_judge): made
     * in the token and never out of it. */
    CK_BBOOL local = BOOL_UNSET, always = BOOL_UNSET, never = BOOL_UNSET, priv = BOOL_UNSET;
    CK_ATTRIBUTE made[] = {{CKA_LOCAL, &local, 1},
                           {CKA_ALWAYS_SENSITIVE, &always, 1},
                           {CKA_NEVER_EXTRACTABLE, &never, 1},
                           {CKA_PRIVATE, &priv, 1}};
    CK_RV rk = p11_read_attrs(p->s, h, made, 4);
    const int in_token =
        rk == CKR_OK && local == CK_TRUE && always == CK_TRUE && never == CK_TRUE && priv == CK_TRUE;
    if (rv != CKR_OK || len != sizeof mac)
        add(p, "origin-hmac", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "C_Sign with CKM_SHA256_HMAC refused, or not 32 bytes");
    else if (good != CKR_OK || bad != CKR_SIGNATURE_INVALID)
        add(p, "origin-hmac", 1, DCMSEAL_CHECK_FAIL, ckr_name(good != CKR_OK ? good : bad),
            "C_Verify: the right proof %s, a wrong one %s", ckr_name(good), ckr_name(bad));
    else if (readable)
        add(p, "origin-hmac", 1, DCMSEAL_CHECK_FAIL, "CKR_OK",
            "the origin key's CKA_VALUE can be read out");
    else if (!in_token)
        add(p, "origin-hmac", 1, DCMSEAL_CHECK_FAIL, ckr_name(rk),
            "the token does not say the origin key is private and was made in it and never "
            "left it (CKA_PRIVATE, CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE): "
            "dcmseal refuses such keys");
    else
        add(p, "origin-hmac", 1, DCMSEAL_CHECK_PASS, "CKR_OK",
            "origin key as `key create` makes it: HMAC-SHA256 proofs made and checked in the "
            "token, a wrong one refused (%s), its value unreadable (%s)",
            ckr_name(bad), ckr_name(rd));
    /* Optional: dcmseal's template asks for CKA_ALLOWED_MECHANISMS, and a
     * token that drops it still makes proofs; then anyone with the PIN could
     * use the key for another MAC. */
    am.ulValueLen = sizeof allowed;
    CK_RV ra = p->m->C_GetAttributeValue(p->s->h, h, &am, 1);
    const int kept = ra == CKR_OK && am.ulValueLen == sizeof allowed[0] &&
                     allowed[0] == CKM_SHA256_HMAC;
    CK_RV other = p->m->C_SignInit(p->s->h, &sha1, h);
    if (other == CKR_OK)
        sign_finish(p);
    add(p, "origin-mechanisms", 0, pass_if(kept && other != CKR_OK), ckr_name(other),
        "CKA_ALLOWED_MECHANISMS {CKM_SHA256_HMAC} %s; HMAC-SHA1 with the origin key: %s",
        kept ? "kept" : "not kept", other == CKR_OK ? "accepted" : "refused");
}

/* ---- sessions ----------------------------------------------------------- */

/* Opens up to |max| sessions besides the two dcmseal holds (its login
 * session and |p->s|), all at once, and decrypts in each. */
static void probe_sessions(struct probe *p, unsigned max)
{
    CK_SESSION_HANDLE *hs = calloc(max, sizeof *hs);
    CK_RV stop = CKR_OK, bad = CKR_OK;
    unsigned n = 0, decrypted = 0;
    dcmseal_check_result *r = NULL;
    if (hs == NULL) {
        not_run(p, "sessions", 1, DCMSEAL_CHECK_FAIL, "out of memory");
        return;
    }
    while (n < max && (stop = p->m->C_OpenSession(p->s->tok->slot,
                                                  CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                                  NULL, &hs[n])) == CKR_OK)
        n++;
    if (p->have_oaep && fresh_wrapped(p) == CKR_OK) {
        for (unsigned i = 0; i < n; i++) {
            int same = 0;
            CK_RV rv = decrypts_to_dek(p, hs[i], p->key->priv, p->wrapped, p->wrapped_len, &same);
            if (rv == CKR_OK && same)
                decrypted++;
            else if (bad == CKR_OK)
                bad = rv == CKR_OK ? CKR_GENERAL_ERROR : rv;
        }
    }
    for (unsigned i = 0; i < n; i++)
        p->m->C_CloseSession(hs[i]);
    free(hs);
    if (!p->have_oaep)
        r = add(p, "sessions", 1, pass_if(n >= 1), ckr_name(stop),
            "%u session%s opened at once besides dcmseal's 2%s; no decrypt tried (no working "
            "RSA-OAEP variant)",
            n, n == 1 ? "" : "s", n == max ? " (the most it tries)" : "");
    else
        r = add(p, "sessions", 1, pass_if(n >= 1 && decrypted == n), ckr_name(bad ? bad : stop),
            "%u session%s opened at once besides dcmseal's 2%s%s; a decrypt ran in %u of them",
            n, n == 1 ? "" : "s", n == max ? " (the most it tries)" : ", then C_OpenSession answered ",
            n == max ? "" : ckr_name(stop), decrypted);
    if (r != NULL)
        r->count = (long)n;
}

/* ---- cleanup ------------------------------------------------------------ */

/* Up to |cap| objects labelled |p->name|, session objects included. */
static CK_RV find_scratch(struct probe *p, CK_OBJECT_HANDLE *hs, CK_ULONG cap, CK_ULONG *n)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, p->name, strlen(p->name)}};
    CK_RV rv = p->m->C_FindObjectsInit(p->s->h, t, 1);
    *n = 0;
    if (rv != CKR_OK)
        return rv;
    rv = p->m->C_FindObjects(p->s->h, hs, cap, n);
    p->m->C_FindObjectsFinal(p->s->h);
    return rv;
}

/* Destroys what the check generated, then whatever still carries the
 * scratch name (a token may have made objects for a call that failed). */
static void cleanup(struct probe *p)
{
    CK_OBJECT_HANDLE hs[16];
    CK_ULONG n = 0;
    CK_RV rv, first = CKR_OK;
    for (int i = 0; i < 2; i++) {
        CK_OBJECT_HANDLE h[2] = {p->pair[i].priv, p->pair[i].pub};
        for (int j = 0; j < 2; j++)
            if (h[j] != CK_INVALID_HANDLE && (rv = p->m->C_DestroyObject(p->s->h, h[j])) != CKR_OK &&
                first == CKR_OK)
                first = rv;
    }
    if ((rv = find_scratch(p, hs, 16, &n)) == CKR_OK)
        for (CK_ULONG i = 0; i < n; i++)
            p->m->C_DestroyObject(p->s->h, hs[i]);
    if (rv == CKR_OK)
        rv = find_scratch(p, hs, 16, &n);
    /* The handles this session cached for the name are gone. */
    cache_clear(p->s);
    if (rv != CKR_OK)
        add(p, "cleanup", 1, DCMSEAL_CHECK_FAIL, ckr_name(rv),
            "cannot tell whether scratch key '%s' is gone: if `key list` shows it, remove "
            "it with `dcmseal key destroy`",
            p->name);
    else if (n != 0)
        add(p, "cleanup", 1, DCMSEAL_CHECK_FAIL, ckr_name(first),
            "%lu object%s of scratch key '%s' left: remove %s with `dcmseal key destroy`",
            (unsigned long)n, n == 1 ? "" : "s", p->name, n == 1 ? "it" : "them");
    else
        add(p, "cleanup", 1, DCMSEAL_CHECK_PASS, "CKR_OK",
            "scratch key '%s' destroyed; nothing of the check is left on the token", p->name);
}

/* ---- public API --------------------------------------------------------- */

dcmseal_status dcmseal_kek_scratch_name(char out[DCMSEAL_KEK_NAME_MAX + 1], const char *prefix,
                                        dcmseal_error *err)
{
    static const char allowed[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    uint8_t r[8];
    size_t n = prefix != NULL ? strlen(prefix) : 0;
    if (out == NULL || n == 0 || n > SCRATCH_PREFIX_MAX || strspn(prefix, allowed) != n)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "scratch key: bad prefix");
    if (RAND_bytes(r, sizeof r) != 1)
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "scratch key: no random bytes");
    snprintf(out, DCMSEAL_KEK_NAME_MAX + 1, "%s-%02x%02x%02x%02x%02x%02x%02x%02x", prefix, r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_check_run(dcmseal_check_t **out, dcmseal_session_t *s,
                                 unsigned max_sessions, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct probe *p = NULL;
    DCMSEAL_ENSURE(out != NULL && s != NULL && max_sessions >= 1 &&
                       max_sessions <= SESSIONS_LIMIT,
                   err, DCMSEAL_E_USAGE, "token check: missing or bad argument");
    *out = NULL;
    p = OPENSSL_zalloc(sizeof *p);
    DCMSEAL_ENSURE(p != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    p->c = OPENSSL_zalloc(sizeof *p->c);
    DCMSEAL_ENSURE(p->c != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    p->s = s;
    p->m = s->tok->mod;
    p->pair[0] = (struct pair){1, 2048, CK_INVALID_HANDLE, CK_INVALID_HANDLE, 0};
    p->pair[1] = (struct pair){2, 3072, CK_INVALID_HANDLE, CK_INVALID_HANDLE, 0};
    DCMSEAL_GUARD(dcmseal_kek_scratch_name(p->name, "dcmseal-check", err));

    probe_token(p);
    probe_mechanisms(p);
    probe_keygen(p, &p->pair[0], "keygen-rsa2048");
    probe_keygen(p, &p->pair[1], "keygen-rsa3072");
    p->key = p->pair[0].ok ? &p->pair[0] : p->pair[1].ok ? &p->pair[1] : NULL;
    p->target = p->key == &p->pair[0] && p->pair[1].ok ? &p->pair[1] : p->key;
    probe_oaep(p);
    probe_rewrap(p);
    probe_disabled(p);
    probe_private(p);
    probe_hardening(p);
    probe_origin(p);
    if (p->key != NULL)
        probe_sessions(p, max_sessions);
    else
        not_run(p, "sessions", 1, DCMSEAL_CHECK_FAIL, "no key pair was generated");
    cleanup(p);
    *out = p->c;
    p->c = NULL;
out:
    if (p != NULL) {
        OPENSSL_free(p->c);
        OPENSSL_clear_free(p, sizeof *p);
    }
    return st;
}

size_t dcmseal_check_count(const dcmseal_check_t *c)
{
    return c != NULL ? c->n : 0;
}

const dcmseal_check_result *dcmseal_check_get0_result(const dcmseal_check_t *c, size_t i)
{
    return c != NULL && i < c->n ? &c->r[i] : NULL;
}

int dcmseal_check_usable(const dcmseal_check_t *c)
{
    if (c == NULL || c->n == 0)
        return 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->r[i].required && c->r[i].verdict != DCMSEAL_CHECK_PASS)
            return 0;
    return 1;
}

void dcmseal_check_free(dcmseal_check_t *c)
{
    OPENSSL_free(c);
}
