/* Origin proofs (FORMAT.md "Origin proof") and concealed names (FORMAT.md
 * "Concealed names"): the format's side of them. The keys stay where the key
 * ring keeps them (the token); this file decides what is proven and what is
 * accepted. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

void dcmseal_origin_message(uint8_t msg[DCMSEAL_ORIGIN_MSG_LEN],
                            const uint8_t header[DCMSEAL_HEADER_LEN],
                            const uint8_t slot[DCMSEAL_SLOT_LEN])
{
    const size_t l = sizeof DCMSEAL_ORIGIN_LABEL - 1;
    memcpy(msg, DCMSEAL_ORIGIN_LABEL, l);
    memcpy(msg + l, header, DCMSEAL_HEADER_LEN);
    memcpy(msg + l + DCMSEAL_HEADER_LEN, slot + DCMSEAL_SLOT_PROVED_OFF, DCMSEAL_SLOT_PROVED_LEN);
}

dcmseal_status dcmseal_origin_policy_of(dcmseal_origin_policy *pol, const dcmseal_keyring *ring,
                                        const dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    memset(pol, 0, sizeof *pol);
    return ring->origin != NULL ? ring->origin(ring->self, pol, meta, err) : DCMSEAL_OK;
}

dcmseal_status dcmseal_origin_check(dcmseal_origin *origin,
                                    const uint8_t header[DCMSEAL_HEADER_LEN],
                                    const dcmseal_header *h, const dcmseal_slot *slot,
                                    const uint8_t raw[DCMSEAL_SLOT_LEN],
                                    const dcmseal_keyring *ring, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    uint8_t msg[DCMSEAL_ORIGIN_MSG_LEN];
    dcmseal_origin_policy pol;
    const dcmseal_wrap_meta *m = &slot->meta;
    *origin = DCMSEAL_ORIGIN_NONE;
    if (slot->origin_kind == DCMSEAL_SLOT_ORIGIN_HMAC) {
        DCMSEAL_ENSURE(ring->check_proof != NULL, err, DCMSEAL_E_KEY,
                       "this key ring cannot check origin proofs (key '%s' v%u)",
                       m->kek_name, m->kek_version);
        dcmseal_origin_message(msg, header, raw);
        DCMSEAL_GUARD(ring->check_proof(ring->self, m, msg, sizeof msg, slot->proof, err));
        *origin = DCMSEAL_ORIGIN_VERIFIED;
        goto out;
    }
    /* Stripping the proof from a v2 object would need another header, and
     * the header is the AAD of every segment. */
    DCMSEAL_ENSURE(h->version == DCMSEAL_FORMAT_V1, err, DCMSEAL_E_AUTH,
                   "not made with this archive's keys: format v%u without an origin proof",
                   h->version);
    DCMSEAL_GUARD(dcmseal_origin_policy_of(&pol, ring, m, err));
    DCMSEAL_ENSURE(!pol.required, err, DCMSEAL_E_AUTH,
                   "not made with this archive's keys: format v1 without an origin proof, "
                   "and key '%s' requires one",
                   m->kek_name);
out:
    return st;
}

dcmseal_status dcmseal_origin_prove(dcmseal_slot *slot, uint8_t raw[DCMSEAL_SLOT_LEN],
                                    const uint8_t header[DCMSEAL_HEADER_LEN],
                                    const dcmseal_keyring *ring, dcmseal_error *err)
{
    uint8_t msg[DCMSEAL_ORIGIN_MSG_LEN];
    dcmseal_status st;
    if (ring->prove == NULL)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "this key ring cannot make origin proofs");
    /* The proof covers the slot's fields, not its own. */
    slot->origin_kind = DCMSEAL_SLOT_ORIGIN_NONE;
    memset(slot->proof, 0, sizeof slot->proof);
    dcmseal_slot_encode(raw, slot);
    dcmseal_origin_message(msg, header, raw);
    if ((st = ring->prove(ring->self, slot->proof, &slot->meta, msg, sizeof msg, err)) !=
        DCMSEAL_OK)
        return st;
    slot->origin_kind = DCMSEAL_SLOT_ORIGIN_HMAC;
    dcmseal_slot_encode(raw, slot);
    return DCMSEAL_OK;
}

/* ---- concealed names ---------------------------------------------------- */

#define CONCEAL_LABEL "dcmseal v2 name"

dcmseal_status dcmseal_conceal_name(char out[DCMSEAL_CONCEALED_NAME_LEN],
                                    const dcmseal_keyring *ring, const char *kek_name,
                                    const char *path, dcmseal_error *err)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t msg[sizeof CONCEAL_LABEL + DCMSEAL_META_PATH_MAX], mac[DCMSEAL_PROOF_LEN];
    char digits[33];
    dcmseal_status st;
    if (out == NULL || ring == NULL || kek_name == NULL || path == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "concealed name: missing argument");
    if (ring->conceal == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "this key ring cannot conceal names");
    if (!dcmseal_meta_path_ok(path))
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "concealed name: not a relative path");
    /* The label with its NUL separates it from the path. */
    const size_t l = sizeof CONCEAL_LABEL, n = strlen(path);
    memcpy(msg, CONCEAL_LABEL, l);
    memcpy(msg + l, path, n);
    if ((st = ring->conceal(ring->self, mac, kek_name, msg, l + n, err)) != DCMSEAL_OK)
        return st;
    for (size_t i = 0; i < 16; i++) {
        digits[2 * i] = hex[mac[i] >> 4];
        digits[2 * i + 1] = hex[mac[i] & 15];
    }
    digits[32] = '\0';
    /* Two levels of 256 folders, as Orthanc stores its attachments: no
     * folder grows past a few thousand entries before millions of objects. */
    snprintf(out, DCMSEAL_CONCEALED_NAME_LEN, "%.2s/%.2s/%s", digits, digits + 2, digits);
    OPENSSL_cleanse(msg, l + n);
    return DCMSEAL_OK;
}
